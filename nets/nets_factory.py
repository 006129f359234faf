"""Looks up detection networks by name, builds them, and keeps the SSD
parameters a model was trained with in its checkpoints (a string variable)
and next to them (ssd_params.json, a human-readable copy)."""
import json
import os

import tensorflow as tf

from nets import ssd_vgg_300
from utils.common import paths
from utils.common import run_directory

# The variable holding the SSD parameters, under the model's scope, and the
# graph collection that lists it.
SSD_PARAMS_VARIABLE = 'ssd_params/json'
SSD_PARAMS_COLLECTION = 'ssd_params'

NETWORKS = {
    'ssd_300_vgg': ssd_vgg_300.SSDNet,
}


def get_network(name):
  """Returns the network class called `name`, e.g. 'ssd_300_vgg'.

  Raises:
    ValueError: if no network has that name.
  """
  if name not in NETWORKS:
    raise ValueError('Unknown network %r; valid names: %s' %
                     (name, ', '.join(sorted(NETWORKS))))
  return NETWORKS[name]


def build_ssd_net(model_name, num_classes=None, **param_overrides):
  """The network `model_name` with its default parameters, but for those
  given (None keeps the default), see the class's `make_params`.

  Raises:
    ValueError: unknown network or parameter, or a bad value.
  """
  ssd_class = get_network(model_name)
  return ssd_class(ssd_class.make_params(num_classes=num_classes,
                                         **param_overrides))


def ssd_params_json(model_name, params):
  """The JSON text of `model_name` and `params` (an SSDParams), as written
  into ssd_params.json and into checkpoints."""
  return json.dumps({'model_name': model_name, 'params': params._asdict()},
                    indent=2) + '\n'


def parse_ssd_params(text, source):
  """(model_name, SSDParams) of `ssd_params_json`'s text.  Parameters
  missing from it (written before they existed) take their default.

  Args:
    text: the JSON text.
    source: where it comes from, for the error message.

  Raises:
    ValueError: unreadable text, unknown network or parameter.
  """
  try:
    content = json.loads(text)
    model_name, values = content['model_name'], content['params']
  except (ValueError, KeyError, TypeError) as error:
    raise ValueError('cannot read SSD parameters from %s: %s' %
                     (source, error)) from None
  ssd_class = get_network(model_name)
  unknown = sorted(set(values) - set(ssd_class.default_params._fields))
  if unknown:
    raise ValueError('%s: unknown SSD parameters %s' % (source, unknown))
  return model_name, ssd_class.default_params._replace(
      **{name: _as_tuples(value) for name, value in values.items()})


def write_ssd_params(directory, model_name, params):
  """Writes `model_name` and `params` (an SSDParams) as JSON into
  `directory`/`run_directory.SSD_PARAMS_FILE_NAME` (atomically), creating the
  directory."""
  os.makedirs(directory, exist_ok=True)
  path = run_directory.ssd_params_file(directory)
  paths.write_text_atomically(path, ssd_params_json(model_name, params))
  return path


def read_ssd_params(directory):
  """(model_name, SSDParams) from `write_ssd_params`'s file in `directory`,
  or None when there is no such file (see `parse_ssd_params`).

  Raises:
    ValueError: unreadable file, unknown network or parameter.
  """
  path = run_directory.ssd_params_file(directory)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as source:
      text = source.read()
  except OSError as error:
    raise ValueError('cannot read SSD parameters from %s: %s' %
                     (path, error)) from None
  return parse_ssd_params(text, path)


def ssd_params_variable_name(model_name):
  """The checkpoint name of the variable holding the SSD parameters."""
  return '%s/%s' % (model_name, SSD_PARAMS_VARIABLE)


def create_ssd_params_variable(model_name, params):
  """A string variable holding `ssd_params_json` in the default graph, so
  that every checkpoint saved from it carries its anchors and class count.

  Not trainable and not a model variable: restoring from a pretrained
  checkpoint (which restores model variables) leaves it at this run's
  parameters.
  """
  return tf.compat.v1.get_variable(
      ssd_params_variable_name(model_name),
      initializer=tf.constant(ssd_params_json(model_name, params)),
      trainable=False,
      collections=[tf.compat.v1.GraphKeys.GLOBAL_VARIABLES,
                   SSD_PARAMS_COLLECTION])


def checkpoint_ssd_params(reader, model_name):
  """(model_name, SSDParams) held by a checkpoint, or None when it holds
  none (written before checkpoints carried them).

  Args:
    reader: the checkpoint's tf.train.load_checkpoint reader.
    model_name: the network (its scope) to look for.

  Raises:
    ValueError: unreadable parameters.
  """
  name = ssd_params_variable_name(model_name)
  if not reader.has_tensor(name):
    return None
  text = reader.get_tensor(name)
  if isinstance(text, bytes):
    text = text.decode('utf-8')
  return parse_ssd_params(text, 'checkpoint variable %s' % name)


def _as_tuples(value):
  """JSON lists back as (nested) tuples, the form of the default params."""
  if isinstance(value, list):
    return tuple(_as_tuples(item) for item in value)
  return value
