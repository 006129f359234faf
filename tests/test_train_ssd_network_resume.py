"""train_ssd_network.py on damaged, moved, copied or foreign run directories
and checkpoints: it resumes through the library's checks (tests/test_resume.py,
test_checkpoints.py) and refuses in one line, before anything changes."""
import glob
import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from datasets import dataset_flags
from nets import nets_factory
from nets import ssd_vgg_300
from utils.checkpointing import checkpoints
from utils.checkpointing import checkpoint_saver
from utils.inference import detection
from utils.common import run_directory
from utils.trainer import config as config_lib
from utils.trainer import graph as graph_lib
from utils.trainer import initialisation
from utils.trainer import train_tools

from script_runs import build_graph, run_script, small_config
from script_runs import step_1_run  # noqa: F401  (a fixture)

v1 = tf.compat.v1


# --------------------------------------------------------------------------
# The training script on a run directory that was moved, holds a corrupt
# newest checkpoint and a killed save's leftovers, on a disk too small for
# one more checkpoint; then the same directory with another class count.

def _size(paths):
  return sum(os.path.getsize(path) for path in paths)


@pytest.mark.slow
def test_resume_survives_a_move_a_corrupt_checkpoint_and_leftovers(
    tmp_path, sample_dataset_dir, mount_tmpfs, step_1_run):
  shutil.copytree(step_1_run, str(tmp_path / 'run1'))
  first = tf.train.latest_checkpoint(str(tmp_path / 'run1'))
  checkpoint_bytes = _size(
      os.path.join(str(tmp_path / 'run1'), name)
      for name in os.listdir(str(tmp_path / 'run1')))
  # Room for the moved checkpoint, a half-size corrupt one, and 0.6 of one
  # more: the leftovers (half a checkpoint) must go for the run to start,
  # and its first checkpoint (the training loop saves one at start) cannot
  # fit.
  disk = mount_tmpfs(int(2.1 * checkpoint_bytes) + (8 << 20))
  run2 = disk / 'run2'
  subprocess.run(['mv', str(tmp_path / 'run1'), str(run2)], check=True,
                 timeout=60)
  data = '.data-00000-of-00001'
  moved = str(run2 / os.path.basename(first))
  corrupt = str(run2 / 'model.ckpt-7')
  shutil.copyfile(moved + '.index', corrupt + '.index')
  with open(moved + data, 'rb') as source, open(corrupt + data, 'wb') as out:
    out.write(source.read(os.path.getsize(moved + data) // 2))
  leftover = str(run2 / ('model.ckpt-8' + data + '.tempstate123'))
  with open(leftover, 'wb') as out:
    out.write(b'\0' * (checkpoint_bytes // 2))

  code, log = run_script(run2, sample_dataset_dir,
                         '--max_number_of_steps=2')
  assert code == 1, log
  assert 'Removed %s, left by an interrupted checkpoint save' % leftover in log
  assert '%s%s is corrupt or truncated' % (corrupt, data) in log
  assert ('Resuming from %s, the newest readable checkpoint' % moved) in log
  assert 'Starting Session' in log
  last_line = log.strip().split('\n')[-1]
  disk_full = ('No space left on device in %s while saving a checkpoint: it '
               'needs about' % run2)
  assert disk_full in last_line, log[-3000:]
  # The only stack traces: TensorFlow's report of the same error, raised in
  # its checkpoint thread (which saves at start), at INFO level.
  assert log.count('Traceback') == log.count(
      'Error reported to Coordinator: ' + disk_full), log[-5000:]
  assert not [name for name in os.listdir(str(run2)) if 'tempstate' in name]
  assert os.path.exists(corrupt + '.index' + checkpoints.CORRUPT_SUFFIX)


def test_resume_with_another_class_count_fails_before_training(
    tmp_path, sample_dataset_dir, step_1_run):
  """The training library, as the script calls it, on a checkpoint of
  another class count."""
  train_dir = str(tmp_path / 'run')
  shutil.copytree(step_1_run, train_dir)
  first = tf.train.latest_checkpoint(train_dir)
  num_classes = tf.train.load_checkpoint(first).get_variable_to_shape_map()[
      'ssd_300_vgg/block11_box/conv_cls/biases'][0] // 4 + 1
  config = small_config(sample_dataset_dir, num_classes=num_classes)
  with tf.Graph().as_default():
    build_graph(config)
    with pytest.raises(checkpoints.CheckpointError) as error:
      initialisation.make_init_fn(train_dir, config.model)
  message = str(error.value)
  assert message.startswith(
      'Cannot resume from %s: it was written by another model' % first)
  assert 'ssd_300_vgg/block4_box/conv_cls/weights: model' in message
  assert ('--checkpoint_path=%s --checkpoint_exclude_scopes=ssd_300_vgg/'
          'block4_box' % first) in message


def test_a_vgg16_checkpoint_in_pretrained_dir_restores_its_conv_layers(
    tmp_path, sample_dataset_dir, caplog):
  """TF-slim's vgg_16.ckpt as the only pretrained checkpoint: the training
  library sets its scope and the SSD-only exclusions, says so, and loads
  VGG16's 26 convolution variables."""
  config = small_config(sample_dataset_dir)
  pretrained = tmp_path / 'pre_trained'
  with tf.Graph().as_default():
    _, deploy_config = build_graph(config)
    conv_variables = [
        v for v in v1.global_variables()
        if v.op.name.split('/')[1:2] and
        v.op.name.split('/')[1] in ssd_vgg_300.VGG_SCOPES]
    rng = np.random.RandomState(0)
    vgg_values = {
        v.op.name.replace('ssd_300_vgg/', 'vgg_16/', 1):
        rng.uniform(-1, 1, v.shape.as_list()).astype(np.float32)
        for v in conv_variables}
    vgg_values['vgg_16/fc8/biases'] = np.zeros([1000], np.float32)
    with tf.Graph().as_default():
      saved = [v1.get_variable(name, initializer=value)
               for name, value in vgg_values.items()]
      with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        v1.train.Saver(saved).save(sess, str(pretrained / 'vgg_16.ckpt'))
    caplog.set_level('INFO')
    model = config_lib.ModelOptions(checkpoint_path=str(pretrained))
    init_fn = initialisation.make_init_fn(str(tmp_path / 'run'), model)
    with v1.Session(config=train_tools.session_config(deploy_config)) as sess:
      sess.run(v1.global_variables_initializer())
      init_fn(sess)
      restored, params_value = sess.run(
          [conv_variables[0], _ssd_params_variable()])
  assert len(conv_variables) == 26
  assert 'is an ImageNet VGG16 checkpoint' in caplog.text
  assert ('--checkpoint_exclude_scopes=ssd_300_vgg/conv6,ssd_300_vgg/conv7'
          in caplog.text)
  assert 'Initialising 26 variables from' in caplog.text
  assert _ssd_params_value(params_value) == config_params(config)
  np.testing.assert_array_equal(
      restored,
      vgg_values[conv_variables[0].op.name.replace('ssd_300_vgg/', 'vgg_16/',
                                                    1)])


def _ssd_params_variable():
  """The SSD parameters variable of the default graph."""
  return v1.get_collection(nets_factory.SSD_PARAMS_COLLECTION)[0]


def _ssd_params_value(value):
  """(model_name, SSDParams) of the variable's value."""
  return nets_factory.parse_ssd_params(value.decode('utf-8'), 'the variable')


def _run_ssd_net(config):
  """The SSDNet the training script builds for `config`."""
  dataset = dataset_flags.load_dataset(config.data.dataset)
  return graph_lib.build_ssd_net(config.model, dataset.num_classes)


def config_params(config):
  """(model_name, SSDParams) of the run of `config`."""
  return config.model.model_name, _run_ssd_net(config).params


# --------------------------------------------------------------------------
# Refused starts: checks before the first write, one line each.

_METADATA_FILES = (run_directory.SSD_PARAMS_FILE_NAME,
                   run_directory.TRAINING_CONFIG_FILE_NAME)


def _metadata_bytes(train_dir):
  """{file name: content} of the run's metadata files."""
  contents = {}
  for name in _METADATA_FILES:
    with open(os.path.join(train_dir, name), 'rb') as source:
      contents[name] = source.read()
  return contents


def _last_line(log):
  return log.strip().split('\n')[-1]


@pytest.fixture(scope='module')
def voc_anchors_run(tmp_path_factory, sample_dataset_dir):
  """A run directory the script trained for one step with --anchor_sizes
  voc (made once; tests work on copies)."""
  train_dir = str(tmp_path_factory.mktemp('voc_anchors_run') / 'run')
  code, log = run_script(train_dir, sample_dataset_dir,
                         '--max_number_of_steps=1', '--anchor_sizes=voc')
  assert code == 0, log[-3000:]
  return train_dir


def _copy_run(run_dir, tmp_path):
  train_dir = str(tmp_path / 'run')
  shutil.copytree(run_dir, train_dir)
  return train_dir


@pytest.mark.slow
def test_a_refused_resume_leaves_the_run_metadata_untouched(
    tmp_path, sample_dataset_dir, voc_anchors_run):
  train_dir = _copy_run(voc_anchors_run, tmp_path)
  before = _metadata_bytes(train_dir)
  code, log = run_script(train_dir, sample_dataset_dir,
                         '--max_number_of_steps=2', '--anchor_sizes=voc',
                         '--num_classes=2')
  assert code == 1, log[-3000:]
  assert ('Cannot resume from %s: it was written by another model' %
          tf.train.latest_checkpoint(train_dir)) in log
  # The error ends the log (its last line is the fix); no settings dump.
  assert '--checkpoint_exclude_scopes=' in _last_line(log)
  assert 'Training configuration' not in log
  assert _metadata_bytes(train_dir) == before
  _, ssd_net = detection.load_network(train_dir)
  assert ssd_net.params.num_classes == dataset_flags.load_dataset(
      small_config(sample_dataset_dir).data.dataset).num_classes


def _text_file(tmp_path, unused_dataset_dir):
  path = tmp_path / 'notes.txt'
  path.write_text('not a checkpoint\n')
  return str(path)


def _jpeg_file(tmp_path, dataset_dir):
  path = str(tmp_path / 'photo.jpg')
  shutil.copyfile(sorted(glob.glob(os.path.join(
      dataset_dir, 'voc', 'JPEGImages', '*.jpg')))[0], path)
  return path


@pytest.mark.slow
@pytest.mark.parametrize('make_file', [_text_file, _jpeg_file])
def test_a_file_that_is_no_checkpoint_is_one_line_and_writes_nothing(
    tmp_path, sample_dataset_dir, make_file):
  path = make_file(tmp_path, sample_dataset_dir)
  train_dir = str(tmp_path / 'run')
  code, log = run_script(train_dir, sample_dataset_dir,
                         '--checkpoint_path=%s' % path,
                         '--max_number_of_steps=1')
  assert code == 1, log[-3000:]
  assert '%s is not a TensorFlow checkpoint' % path in _last_line(log)
  assert 'Traceback' not in log
  assert not os.path.exists(train_dir)


@pytest.mark.parametrize('make_file', [_text_file, _jpeg_file])
def test_the_detector_says_a_file_is_not_a_checkpoint(
    tmp_path, sample_dataset_dir, make_file):
  path = make_file(tmp_path, sample_dataset_dir)
  with pytest.raises(checkpoints.CheckpointError) as error:
    detection.load_network(path)
  assert str(error.value).startswith(
      '%s is not a TensorFlow checkpoint (' % path)
  assert '\n' not in str(error.value)


def _read_only_folder(tmp_path, mount_tmpfs):
  """(a folder this process cannot write into, why)."""
  if os.geteuid() != 0:
    folder = tmp_path / 'read_only'
    folder.mkdir()
    folder.chmod(0o555)
    return folder, 'permission denied'
  folder = mount_tmpfs(1 << 20)
  subprocess.run(['mount', '-o', 'remount,ro', str(folder)], check=True,
                 timeout=30)
  return folder, 'a read-only file system'


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['regular file', 'read-only'])
def test_an_unusable_train_dir_is_one_line(tmp_path, sample_dataset_dir,
                                           mount_tmpfs, kind):
  if kind == 'regular file':
    train_dir = tmp_path / 'run'
    train_dir.write_text('')
    expected = '--train_dir %s: %s is a file, not a folder.' % (train_dir,
                                                                train_dir)
  else:
    folder, why = _read_only_folder(tmp_path, mount_tmpfs)
    train_dir = folder / 'run'
    expected = '--train_dir %s: cannot write into %s (%s).' % (
        train_dir, folder, why)
  code, log = run_script(str(train_dir), sample_dataset_dir,
                         '--max_number_of_steps=1')
  assert code == 1, log[-3000:]
  assert _last_line(log).endswith(expected), log[-3000:]
  assert 'Traceback' not in log


@pytest.mark.slow
def test_a_truncated_shard_is_named_in_one_line(tmp_path, sample_dataset_dir):
  dataset_dir = str(tmp_path / 'data')
  shutil.copytree(sample_dataset_dir, dataset_dir,
                  ignore=shutil.ignore_patterns('voc'))
  shard = dataset_flags.load_dataset(
      small_config(dataset_dir).data.dataset).files[0]
  with open(shard, 'r+b') as data:
    data.truncate(os.path.getsize(shard) - 500)
  code, log = run_script(str(tmp_path / 'run'), dataset_dir,
                         '--max_number_of_steps=40')
  assert code == 1, log[-3000:]
  assert ('Training data %s is damaged: truncated: the record at byte' %
          shard) in _last_line(log), log[-3000:]
  assert 'Traceback' not in log


# --------------------------------------------------------------------------
# The SSD parameters inside the checkpoint.


def _copy_checkpoint_alone(prefix, directory):
  """Copies model.ckpt-N.* (nothing else) into `directory`; the copy's
  prefix."""
  os.makedirs(directory)
  for path in glob.glob(prefix + '.*'):
    shutil.copy(path, directory)
  return os.path.join(directory, os.path.basename(prefix))


def _assert_same_anchors(ssd_net, other):
  for layer, other_layer in zip(ssd_net.anchors(), other.anchors()):
    for array, other_array in zip(layer, other_layer):
      np.testing.assert_array_equal(array, other_array)


@pytest.mark.slow
def test_a_checkpoint_copied_alone_decodes_with_its_own_anchors(
    tmp_path, voc_anchors_run):
  copy = _copy_checkpoint_alone(tf.train.latest_checkpoint(voc_anchors_run),
                                str(tmp_path / 'copy'))
  assert run_directory.SSD_PARAMS_FILE_NAME not in os.listdir(str(tmp_path / 'copy'))
  _, ssd_net = detection.load_network(copy)
  _assert_same_anchors(ssd_net, nets_factory.build_ssd_net(
      'ssd_300_vgg', anchor_sizes='voc'))
  default_heights = nets_factory.build_ssd_net('ssd_300_vgg').anchors()[0][2]
  assert not np.array_equal(ssd_net.anchors()[0][2], default_heights)


@pytest.mark.slow
def test_resume_with_other_anchor_sizes_is_refused_in_one_line(
    tmp_path, sample_dataset_dir, voc_anchors_run):
  train_dir = _copy_run(voc_anchors_run, tmp_path)
  before = _metadata_bytes(train_dir)
  code, log = run_script(train_dir, sample_dataset_dir,
                         '--max_number_of_steps=2')
  assert code == 1, log[-3000:]
  voc = ssd_vgg_300.SSDNet.make_params(anchor_sizes='voc').anchor_sizes
  default = ssd_vgg_300.SSDNet.default_params.anchor_sizes
  last_line = _last_line(log)
  assert 'Cannot resume from %s: it was trained with --anchor_sizes=%s' % (
      tf.train.latest_checkpoint(train_dir),
      ssd_vgg_300.anchor_sizes_text(voc)) in last_line, log[-3000:]
  assert ('this run asks for --anchor_sizes=%s' %
          ssd_vgg_300.anchor_sizes_text(default)) in last_line
  assert 'Training configuration' not in log
  assert _metadata_bytes(train_dir) == before


@pytest.mark.slow
def test_the_checkpoint_parameters_win_over_a_disagreeing_json(
    tmp_path, voc_anchors_run, caplog):
  copy = _copy_checkpoint_alone(tf.train.latest_checkpoint(voc_anchors_run),
                                str(tmp_path / 'copy'))
  voc_net = nets_factory.build_ssd_net('ssd_300_vgg', anchor_sizes='voc')
  json_path = nets_factory.write_ssd_params(
      str(tmp_path / 'copy'), 'ssd_300_vgg',
      ssd_vgg_300.SSDNet.default_params._replace(
          num_classes=voc_net.params.num_classes))
  _, ssd_net = detection.load_network(copy)
  _assert_same_anchors(ssd_net, voc_net)
  assert ('%s differs from the SSD parameters inside checkpoint %s' % (
      json_path, copy)) in caplog.text


def _save_without_ssd_params(prefix, save_path):
  """Saves `prefix`'s variables but the SSD parameters at `save_path`, as
  checkpoints were saved before they held them; returns the new prefix."""
  reader = tf.train.load_checkpoint(prefix)
  shapes = reader.get_variable_to_shape_map()
  dtypes = reader.get_variable_to_dtype_map()
  names = [name for name in shapes
           if not name.endswith(nets_factory.SSD_PARAMS_VARIABLE)]
  with tf.Graph().as_default():
    variables = {name: v1.get_variable('v%d' % i, shapes[name], dtypes[name])
                 for i, name in enumerate(names)}
    saver = v1.train.Saver(variables)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      for name, variable in variables.items():
        variable.load(reader.get_tensor(name), sess)
      return saver.save(sess, save_path, global_step=1)


def test_an_older_checkpoint_without_parameters_resumes(
    tmp_path, sample_dataset_dir, step_1_run):
  old = _save_without_ssd_params(tf.train.latest_checkpoint(step_1_run),
                                 str(tmp_path / 'run' / 'model.ckpt'))
  config = small_config(sample_dataset_dir)
  with tf.Graph().as_default():
    tensors, deploy_config = build_graph(config)
    assert initialisation.make_init_fn(str(tmp_path / 'run'), config.model,
                                       _run_ssd_net(config)) is None
    saver = checkpoint_saver.CheckpointSaver()
    with v1.Session(config=train_tools.session_config(deploy_config)) as sess:
      saver.restore(sess, old)
      step, params_value = sess.run([tensors.global_step,
                                     _ssd_params_variable()])
  assert step == 1
  assert _ssd_params_value(params_value) == config_params(config)
