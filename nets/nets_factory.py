"""Looks up detection networks by name, builds them, and keeps the SSD
parameters a model was trained with next to its checkpoints."""
import json
import os

from nets import ssd_vgg_300
from utils import paths

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


def write_ssd_params(directory, model_name, params):
  """Writes `model_name` and `params` (an SSDParams) as JSON into
  `directory`/`paths.SSD_PARAMS_FILE_NAME`, creating the directory."""
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, paths.SSD_PARAMS_FILE_NAME)
  with open(path, 'w') as out:
    json.dump({'model_name': model_name, 'params': params._asdict()}, out,
              indent=2)
    out.write('\n')
  return path


def read_ssd_params(directory):
  """(model_name, SSDParams) from `write_ssd_params`'s file in `directory`,
  or None when there is no such file.  Parameters missing from the file
  (written before they existed) take their default.

  Raises:
    ValueError: unreadable file, unknown network or parameter.
  """
  path = os.path.join(directory, paths.SSD_PARAMS_FILE_NAME)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as source:
      content = json.load(source)
    model_name, values = content['model_name'], content['params']
  except (OSError, ValueError, KeyError, TypeError) as error:
    raise ValueError('cannot read SSD parameters from %s: %s' %
                     (path, error)) from None
  ssd_class = get_network(model_name)
  unknown = sorted(set(values) - set(ssd_class.default_params._fields))
  if unknown:
    raise ValueError('%s: unknown SSD parameters %s' % (path, unknown))
  return model_name, ssd_class.default_params._replace(
      **{name: _as_tuples(value) for name, value in values.items()})


def _as_tuples(value):
  """JSON lists back as (nested) tuples, the form of the default params."""
  if isinstance(value, list):
    return tuple(_as_tuples(item) for item in value)
  return value
