r"""The project's half of bench/torchvision_parity.py (run in the project venv).

  .venv/bin/python bench/parity_ours.py --work_dir DIR \
      --checkpoint_dir DIR/imported --export_dir DIR/export --clean_images 0,2

Reads what torchvision_parity.py wrote into --work_dir (photos.json: the
300x300 PNGs and their boxes; torchvision_inputs.npy: torchvision's
normalised network input, NCHW) and writes ours.npz and ours.json there:
  * the default boxes of the imported ssd_params (cx, cy, w, h), normalised;
  * every feature map's class logits and encoded boxes, on torchvision's
    input tensor and on our own preprocessing of the PNGs (with that input);
  * the detections of the exported SavedModel on the PNG bytes;
  * the training loss terms on torchvision's input tensor with the photos'
    boxes (`nets.losses`, our matching), for the whole batch and for the
    --clean_images subset, the positives per image, and every variable's
    gradient norm (keyed by torchvision's state_dict names).
The network is built as evaluation and training build it
(`utils.inference.detection.load_network`, `restore_detector`), all float32.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf
from utils.common import tf_compat  # noqa: F401,E402
import tf_slim as slim  # noqa: E402

from nets import anchor_generator  # noqa: E402
from utils.checkpointing import checkpoint_import  # noqa: E402
from utils.inference import detection  # noqa: E402
from utils.inference import saved_model  # noqa: E402
# pylint: enable=g-import-not-at-top,wrong-import-position

_v1 = tf.compat.v1
MODEL_NAME = 'ssd_300_vgg'
LOSS_TERMS = ('cross_entropy_pos', 'cross_entropy_neg', 'localization')


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--work_dir', required=True)
  parser.add_argument('--checkpoint_dir', required=True)
  parser.add_argument('--export_dir', required=True)
  parser.add_argument('--clean_images', default='',
                      help='Comma-separated indices of the images whose '
                      'boxes never share a best anchor.')
  return parser.parse_args(argv)


def read_photos(work_dir):
  with open(os.path.join(work_dir, 'photos.json')) as stream:
    photos = json.load(stream)
  encoded = []
  for photo in photos:
    with open(os.path.join(work_dir, photo['png']), 'rb') as stream:
      encoded.append(stream.read())
  return photos, encoded


def flat_anchors(ssd_net):
  """[N, 4] (cx, cy, w, h) normalised default boxes, in the anchor order."""
  (cy, cx, h, w), _ = anchor_generator.flatten_anchors(ssd_net.anchors())
  return np.stack([cx, cy, w, h], axis=1)


def build_net(ssd_net, images, is_training):
  """Per-layer (logits, localisations) as [B, N_layer, K] / [B, N_layer, 4]."""
  with slim.arg_scope(ssd_net.arg_scope()):
    _, localisations, logits, _ = ssd_net.net(images, is_training=is_training,
                                              scope=MODEL_NAME)
  return logits, localisations


def head_outputs(checkpoint_path, ssd_net, inputs, encoded):
  """Logits and localisations per layer on `inputs` (NHWC) and on our own
  preprocessing of `encoded`, and that preprocessed input."""
  with tf.Graph().as_default():
    own_inputs, _ = detection.decode_and_preprocess(
        tf.constant(encoded), ssd_net, MODEL_NAME)
    placeholder = _v1.placeholder(tf.float32, [None, 300, 300, 3])
    logits, localisations = build_net(ssd_net, placeholder, False)
    with _v1.Session() as session:
      detection.restore_detector(session, checkpoint_path,
                                 model_name=MODEL_NAME)
      own = session.run(own_inputs)
      on_theirs = session.run([logits, localisations], {placeholder: inputs})
      on_ours = session.run([logits, localisations], {placeholder: own})
  return on_theirs, on_ours, own


def exported_detections(export_dir, encoded):
  """The SavedModel's outputs for the batch of encoded images."""
  with tf.Graph().as_default(), _v1.Session() as session:
    meta = _v1.saved_model.loader.load(session, ['serve'], export_dir)
    serving = meta.signature_def[saved_model.SIGNATURE_NAME]
    names = {key: value.name for key, value in serving.outputs.items()}
    feed = {serving.inputs[saved_model.INPUT_NAME].name: encoded}
    return session.run(names, feed)


def image_targets(ssd_net, anchors, photo):
  """One image's targets from its pixel boxes (x1 y1 x2 y2 in 300x300)."""
  boxes = np.asarray(photo['boxes'], np.float32).reshape(-1, 4)
  height, width = ssd_net.params.img_shape
  normalised = boxes[:, [1, 0, 3, 2]] / np.float32(
      [height, width, height, width])
  return ssd_net.bboxes_encode(tf.constant(photo['labels'], tf.int64),
                               tf.constant(normalised), anchors)


def batch_loss(ssd_net, logits, localisations, targets, indices):
  """LossTerms of the images `indices` of the batch."""
  def pick(tensors):
    return [tf.gather(tensor, indices) for tensor in tensors]
  gclasses, glocalisations, gious = (
      [tf.stack([target[kind][layer] for target in targets])
       for layer in range(len(logits))] for kind in range(3))
  return ssd_net.losses(pick(logits), pick(localisations), pick(gclasses),
                        pick(glocalisations), pick(gious))


def training_terms(checkpoint_path, ssd_net, inputs, photos, clean):
  """Loss terms, positives and gradient norms on the batch and its subset
  `clean` (a list of image indices)."""
  key_of = {'%s/%s' % (MODEL_NAME, name): key for key, (name, _) in
            checkpoint_import.torchvision_key_map().items()}
  with tf.Graph().as_default():
    images = tf.constant(inputs)
    logits, localisations = build_net(ssd_net, images, True)
    anchors = ssd_net.anchors()
    targets = [image_targets(ssd_net, anchors, photo) for photo in photos]
    positives = tf.stack([
        tf.add_n([tf.reduce_sum(tf.cast(layer > 0, tf.int32))
                  for layer in target.gclasses]) for target in targets])
    variables = _v1.trainable_variables()
    gclasses = tf.stack([anchor_generator.concat_layers(
        [layer[tf.newaxis] for layer in target.gclasses], [], tf.int64)[0]
                         for target in targets])
    fetches = {'positives': positives, 'gclasses': gclasses}
    for subset, indices in (('all', list(range(len(photos)))),
                            ('clean', clean)):
      if not indices:
        continue
      terms = batch_loss(ssd_net, logits, localisations, targets, indices)
      gradients = tf.gradients(tf.add_n(list(terms)), variables)
      fetches[subset] = {
          'terms': terms._asdict(),
          'gradient_norms': {key_of[v.op.name]: tf.norm(g)
                             for v, g in zip(variables, gradients)}}
    with _v1.Session() as session:
      detection.restore_detector(session, checkpoint_path,
                                 model_name=MODEL_NAME)
      return session.run(fetches)


def to_python(value):
  if isinstance(value, dict):
    return {key: to_python(item) for key, item in value.items()}
  return np.asarray(value).tolist()


def main(argv=None):
  args = parse_args(argv)
  _v1.disable_eager_execution()
  photos, encoded = read_photos(args.work_dir)
  checkpoint_path, ssd_net = detection.load_network(args.checkpoint_dir,
                                                    MODEL_NAME)
  inputs = np.load(os.path.join(args.work_dir, 'torchvision_inputs.npy'))
  inputs = np.ascontiguousarray(inputs.transpose(0, 2, 3, 1))
  on_theirs, on_ours, own_inputs = head_outputs(checkpoint_path, ssd_net,
                                                inputs, encoded)
  arrays = {'anchors': flat_anchors(ssd_net), 'own_inputs': own_inputs}
  for name, (logits, localisations) in (('theirs', on_theirs),
                                        ('own', on_ours)):
    for layer, (layer_logits, layer_locs) in enumerate(zip(logits,
                                                           localisations)):
      batch = layer_logits.shape[0]
      arrays['logits_%s_%d' % (name, layer)] = layer_logits.reshape(
          batch, -1, layer_logits.shape[-1])
      arrays['localisations_%s_%d' % (name, layer)] = layer_locs.reshape(
          batch, -1, 4)
  for key, value in exported_detections(args.export_dir, encoded).items():
    arrays['export_' + key] = value
  np.savez(os.path.join(args.work_dir, 'ours.npz'), **arrays)
  clean = [int(i) for i in args.clean_images.split(',') if i]
  training = training_terms(checkpoint_path, ssd_net, inputs, photos, clean)
  with open(os.path.join(args.work_dir, 'ours.json'), 'w') as stream:
    json.dump(to_python(training), stream)


if __name__ == '__main__':
  main()
