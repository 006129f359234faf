"""Imports run one way: a layer never imports a layer above it.

The layers (README.md, "Architecture"), bottom first:
  0 helpers    utils/{tf_compat,paths,box_ops,drawing,voc_eval,coco_eval,platform_info,
               run_lock}
  1 concepts   datasets/, preprocessing/, nets/ (each imports only layer 0 and
               its own package)
  2 deployment deployment/ (layer 0 and itself)
  3 application utils/{train_tools,training,checkpoints,detection}
  4 scripts    train/eval/demo/export, bench/, tests/ (never imported by a package)
Every module is parsed (imports inside functions count too); a new module in
utils/ must be given its layer here.
"""
import ast
import os

from conftest import PROJECT_ROOT

PACKAGES = ('datasets', 'preprocessing', 'nets', 'deployment', 'utils')
UTILS_LAYERS = {
    'tf_compat': 0, 'paths': 0, 'box_ops': 0, 'drawing': 0, 'voc_eval': 0,
    'coco_eval': 0, 'platform_info': 0, 'run_lock': 0,
    'train_tools': 3, 'training': 3, 'checkpoints': 3, 'detection': 3,
    'openvino_detector': 3, 'checkpoint_import': 3,
}
PACKAGE_LAYERS = {'datasets': 1, 'preprocessing': 1, 'nets': 1,
                  'deployment': 2}
# Bottom helpers that must not even import TensorFlow (NumPy-only metrics, the
# CPU probe that runs before TensorFlow is imported, the run lock).
NO_TENSORFLOW = ('utils.voc_eval', 'utils.coco_eval', 'utils.platform_info',
                 'utils.drawing', 'utils.paths', 'utils.run_lock')
SCRIPTS = ('train_ssd_network', 'eval_ssd_network', 'demo_ssd',
           'export_ssd_network', 'bench', 'tests', 'conftest')


def _modules():
  for package in PACKAGES:
    folder = os.path.join(PROJECT_ROOT, package)
    for name in sorted(os.listdir(folder)):
      if name.endswith('.py'):
        yield '%s.%s' % (package, name[:-3]), os.path.join(folder, name)


def _layer(module):
  package, _, name = module.partition('.')
  if package == 'utils':
    if name in ('', '__init__'):
      return 0
    assert name in UTILS_LAYERS, (
        'utils/%s.py has no layer: add it to UTILS_LAYERS (and the README map)'
        % name)
    return UTILS_LAYERS[name]
  if package in PACKAGE_LAYERS:
    return PACKAGE_LAYERS[package]
  return 4 if package in SCRIPTS else None


def _imported(path):
  """Top-level names of the modules `path` imports, anywhere in the file."""
  with open(path) as source:
    tree = ast.parse(source.read(), path)
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield alias.name
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      if node.module in PACKAGES:
        for alias in node.names:
          yield '%s.%s' % (node.module, alias.name)
      else:
        yield node.module


def _violations():
  found = []
  for module, path in _modules():
    package = module.split('.')[0]
    layer = _layer(module)
    for target in _imported(path):
      if module in NO_TENSORFLOW and target.split('.')[0] == 'tensorflow':
        found.append('%s imports tensorflow' % module)
      target_layer = _layer(target)
      if target_layer is None or target == module:
        continue
      same_package = target.split('.')[0] == package
      if target_layer > layer:
        found.append('%s (layer %d) imports %s (layer %d)' % (
            module, layer, target, target_layer))
      elif target_layer == layer and not same_package and layer in (1, 2):
        found.append('%s imports its sibling package %s' % (module, target))
  return found


def test_imports_run_one_way():
  assert _violations() == []


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
  # The checker itself must fail on a violation: a layer-0 helper importing
  # the application layer.
  fake = tmp_path / 'paths.py'
  fake.write_text('from utils import training\nimport tensorflow as tf\n')
  monkeypatch.setattr(
      __import__(__name__), '_modules',
      lambda: iter([('utils.paths', str(fake))]), raising=True)
  assert _violations() == [
      'utils.paths (layer 0) imports utils.training (layer 3)',
      'utils.paths imports tensorflow']
