"""Imports run one way: a layer never imports a layer above it.

Each folder is one layer (README.md, "Architecture"), bottom first:
  0 helpers     utils/common/
  1 concepts    datasets/, preprocessing/, nets/ (none imports another)
  2 deployment  deployment/
  3 checkpoints utils/checkpointing/
  4 application utils/trainer/, utils/inference/ (neither imports the other)
  5 evaluation  utils/evaluation/
  6 scripts     the entry scripts, bench/, tests/ (never imported by a package)
Every module is parsed (imports inside functions count too). The layer of a
module is the layer of its folder, so a new module needs no entry here; a new
folder does.
"""
import ast
import os

from conftest import PROJECT_ROOT

FOLDER_LAYERS = {
    'utils/common': 0,
    'datasets': 1, 'preprocessing': 1, 'nets': 1,
    'deployment': 2,
    'utils/checkpointing': 3,
    'utils/trainer': 4, 'utils/inference': 4,
    'utils/evaluation': 5,
}
SCRIPT_LAYER = 6
SCRIPTS = ('train_ssd_network', 'eval_ssd_network', 'demo_ssd',
           'export_ssd_network', 'import_checkpoint', 'bench', 'tests',
           'conftest')
# Helpers that must not even import TensorFlow: NumPy-only metrics, the CPU
# probe that runs before TensorFlow is imported, paths, drawing, the run lock.
NO_TENSORFLOW = ('utils.evaluation.voc_eval', 'utils.evaluation.coco_eval',
                 'utils.common.platform_info', 'utils.common.drawing',
                 'utils.common.paths', 'utils.common.run_lock')


def _folder(module):
  return '/'.join(module.split('.')[:-1])


def _modules():
  """(dotted name, path) of every module in a layered folder."""
  for folder in FOLDER_LAYERS:
    directory = os.path.join(PROJECT_ROOT, folder)
    for name in sorted(os.listdir(directory)):
      if name.endswith('.py'):
        yield '%s.%s' % (folder.replace('/', '.'), name[:-3]), os.path.join(
            directory, name)


def _layer(module):
  """The layer of a dotted module or package name; None outside the project."""
  parts = module.split('.')
  if parts[0] in SCRIPTS:
    return SCRIPT_LAYER
  for depth in (2, 1):
    folder = '/'.join(parts[:depth])
    if folder in FOLDER_LAYERS:
      return FOLDER_LAYERS[folder]
  if parts[0] == 'utils':
    assert len(parts) > 1 and parts[1] == '__init__' or len(parts) == 1, (
        '%s is in no layer: put it in a folder of FOLDER_LAYERS' % module)
    return 0
  return None


def _imported(path):
  """Dotted names of the modules `path` imports, anywhere in the file."""
  with open(path) as source:
    tree = ast.parse(source.read(), path)
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield alias.name
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      for alias in node.names:
        yield '%s.%s' % (node.module, alias.name)


def _violations(modules):
  found = []
  for module, path in modules:
    layer, folder = _layer(module), _folder(module)
    for target in _imported(path):
      if module in NO_TENSORFLOW and target.split('.')[0] == 'tensorflow':
        found.append('%s imports tensorflow' % module)
      target_layer = _layer(target)
      if target_layer is None or _folder(target) == folder:
        continue
      if target_layer > layer:
        found.append('%s (layer %d) imports %s (layer %d)' % (
            module, layer, target, target_layer))
      elif target_layer == layer:
        found.append('%s imports %s, a sibling folder of its layer' % (
            module, target))
  return found


def test_imports_run_one_way():
  assert _violations(_modules()) == []


def test_every_utils_module_is_in_a_layered_folder():
  loose = [name for name in os.listdir(os.path.join(PROJECT_ROOT, 'utils'))
           if name.endswith('.py') and name != '__init__.py']
  folders = [name for name in os.listdir(os.path.join(PROJECT_ROOT, 'utils'))
             if os.path.isfile(os.path.join(PROJECT_ROOT, 'utils', name,
                                            '__init__.py'))]
  assert loose == []
  assert sorted('utils/' + name for name in folders) == sorted(
      folder for folder in FOLDER_LAYERS if folder.startswith('utils/'))


def test_the_rule_catches_upward_and_sibling_imports(tmp_path):
  # The checker itself must fail: a helper importing the trainer and
  # TensorFlow, a trainer module importing the inference folder.
  helper = tmp_path / 'paths.py'
  helper.write_text('from utils.trainer import training\n'
                    'import tensorflow as tf\n')
  trainer = tmp_path / 'training.py'
  trainer.write_text('from utils.inference import detection\n'
                     'from utils.trainer import train_tools\n'
                     'from utils.common import paths\n')
  assert _violations([('utils.common.paths', str(helper)),
                      ('utils.trainer.training', str(trainer))]) == [
      'utils.common.paths (layer 0) imports utils.trainer.training (layer 4)',
      'utils.common.paths imports tensorflow',
      'utils.trainer.training imports utils.inference.detection, a sibling '
      'folder of its layer']
