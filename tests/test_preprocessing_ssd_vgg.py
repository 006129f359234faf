"""Tests of preprocessing/ssd_vgg_preprocessing.py: SSD augmentation and
evaluation resizing.

Most run on real images of the `groceries_dir` dataset, read here with cv2
and xml.etree (the hand-checked box geometry of tf_image is in
test_preprocessing_tf_image.py).  Every box of an
example gets its own label (the dataset has one class an image), so a label
names its box and the tests can follow boxes through the transforms.
"""
import os
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
import tensorflow as tf

from preprocessing import preprocessing_factory
from preprocessing import ssd_vgg_preprocessing
from preprocessing import tf_image

OUT_SHAPE = (300, 300)
FULL_WINDOW = np.array(tf_image.FULL_WINDOW, np.float32)
MEANS = np.array(ssd_vgg_preprocessing.VGG_MEANS, np.float32)


def _evaluate(build):
  """Runs `build()` in a fresh graph and returns the values of its tensors."""
  with tf.Graph().as_default():
    tensors = build()
    with tf.compat.v1.Session() as session:
      return session.run(tensors)


class _Runner(object):
  """One graph of `build(placeholders...)`, run for many feeds."""

  def __init__(self, build, *placeholder_specs):
    self._graph = tf.Graph()
    with self._graph.as_default():
      self._placeholders = [tf.compat.v1.placeholder(dtype, shape)
                            for dtype, shape in placeholder_specs]
      self._tensors = build(*self._placeholders)
    self._session = tf.compat.v1.Session(graph=self._graph)

  def __call__(self, *values):
    return self._session.run(self._tensors,
                             dict(zip(self._placeholders, values)))

  def close(self):
    self._session.close()


EXAMPLE_SPECS = ((tf.uint8, [None, None, 3]), (tf.int64, [None]),
                 (tf.float32, [None, 4]), (tf.int64, [2]))


def _read_example(groceries_dir, name):
  """(RGB uint8 image, int64 labels 1..N, float32 [N, 4] normalised boxes)."""
  image = cv2.imread(os.path.join(groceries_dir, 'JPEGImages', name + '.jpg'))
  image = np.ascontiguousarray(image[:, :, ::-1])
  height, width = image.shape[:2]
  root = ET.parse(os.path.join(groceries_dir, 'Annotations', name + '.xml'))
  boxes = []
  for bndbox in root.iter('bndbox'):
    ymin, xmin, ymax, xmax = (float(bndbox.find(key).text)
                              for key in ('ymin', 'xmin', 'ymax', 'xmax'))
    # VOC boxes are 1-based inclusive pixels; normalise their outer edges.
    boxes.append([(ymin - 1.) / height, (xmin - 1.) / width,
                  ymax / height, xmax / width])
  boxes = np.array(boxes, np.float32).reshape(-1, 4)
  return image, np.arange(1, len(boxes) + 1, dtype=np.int64), boxes


def _annotation_names(groceries_dir):
  return sorted(name[:-len('.xml')] for name in
                os.listdir(os.path.join(groceries_dir, 'Annotations')))


@pytest.fixture(scope='module')
def examples(groceries_dir):
  """Eight examples spread over the dataset's classes."""
  names = _annotation_names(groceries_dir)
  return [_read_example(groceries_dir, name)
          for name in names[::len(names) // 8][:8]]


@pytest.fixture(scope='module')
def large_single_objects(groceries_dir):
  """Four examples with one object covering over half of the image."""
  found = []
  for name in _annotation_names(groceries_dir):
    example = _read_example(groceries_dir, name)
    if len(example[2]) == 1 and _areas(example[2])[0] > 0.5:
      found.append(example)
      if len(found) == 4:
        return found
  pytest.fail('the dataset has fewer than 4 images with one large object')


def _areas(boxes):
  return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _in_window(boxes, window):
  """Numpy reference of tf_image.bboxes_in_window."""
  start = np.tile(window[:2], 2)
  return (boxes - start) / (np.tile(window[2:], 2) - start)


def _expected_crop(labels, boxes, window):
  """Numpy reference of the crop rule: centre inside, clipped, not empty."""
  centres = (boxes[:, :2] + boxes[:, 2:]) / 2.
  keep = np.all((centres >= window[:2]) & (centres <= window[2:]), axis=1)
  cropped = np.clip(_in_window(boxes[keep], window), 0., 1.)
  positive = np.all(cropped[:, 2:] > cropped[:, :2], axis=1)
  return labels[keep][positive], cropped[positive]


def _train_fn(**kwargs):
  training_fn = preprocessing_factory.get_preprocessing('ssd_300_vgg', True)
  return lambda image, labels, boxes, seed: training_fn(
      image, labels, boxes, OUT_SHAPE, seed=seed, **kwargs)


def test_invalid_options_are_refused():
  image = tf.zeros([4, 4, 3], tf.uint8)
  labels, boxes = tf.zeros([0], tf.int64), tf.zeros([0, 4])
  with pytest.raises(ValueError, match='resize'):
    ssd_vgg_preprocessing.preprocess_for_eval(image, labels, boxes, OUT_SHAPE,
                                              resize='crop')
  with pytest.raises(ValueError, match='data_format'):
    ssd_vgg_preprocessing.preprocess_for_train(image, labels, boxes, OUT_SHAPE,
                                               data_format='HWC')


# Training on real images.


def test_training_invariants_over_many_draws(examples):
  run = _Runner(_train_fn(), *EXAMPLE_SPECS)
  draws = [(example, seed) for seed in range(25) for example in examples]
  kept_fewer = 0
  for (image, labels, boxes), seed in draws:
    out_image, out_labels, out_boxes = run(image, labels, boxes, [seed, 1])
    assert out_image.shape == OUT_SHAPE + (3,)
    assert out_image.dtype == np.float32
    assert np.all(out_image >= -MEANS - 1e-3)
    assert np.all(out_image <= 255. - MEANS + 1e-3)
    assert out_boxes.shape == (len(out_labels), 4)
    assert np.all((out_boxes >= 0.) & (out_boxes <= 1.))
    assert np.all(out_boxes[:, 2:] > out_boxes[:, :2])
    # Kept boxes keep their label and order (labels were 1..N).
    assert np.all(np.isin(out_labels, labels))
    assert np.all(np.diff(out_labels) > 0)
    kept_fewer += len(out_labels) < len(labels)
  # Crops that drop boxes happen, but not in every draw.
  assert 0 < kept_fewer < len(draws)
  image = examples[0][0]
  for seed in range(5):
    out = run(image, np.zeros([0], np.int64), np.zeros([0, 4], np.float32),
              [seed, 2])
    assert out[0].shape == OUT_SHAPE + (3,) and out[1].shape == (0,)
  run.close()


def _stateful_train_runs(example, seed, graph_seed):
  """Two session runs of training preprocessing with op and graph seeds."""
  def build(*inputs):
    if graph_seed is not None:
      tf.compat.v1.set_random_seed(graph_seed)
    return _train_fn()(*inputs, seed=seed)
  run = _Runner(build, *EXAMPLE_SPECS[:3])
  runs = [run(*example) for _ in range(2)]
  run.close()
  return runs


def test_training_is_deterministic_given_a_seed(examples):
  run, fresh_run = (_Runner(_train_fn(), *EXAMPLE_SPECS) for _ in range(2))
  first = run(*examples[1], [3, 4])
  for repeated in (run(*examples[1], [3, 4]), fresh_run(*examples[1], [3, 4])):
    for value, repeated_value in zip(first, repeated):
      np.testing.assert_array_equal(value, repeated_value)
  assert not np.array_equal(first[0], run(*examples[1], [3, 5])[0])
  run.close()
  fresh_run.close()
  # An int or no seed draws a seed per call: repeatable with a graph seed.
  for seed, graph_seed in ((None, 5), (7, None)):
    first, second = _stateful_train_runs(examples[1], seed, graph_seed)
    again, _ = _stateful_train_runs(examples[1], seed, graph_seed)
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], second[0])


def test_parallel_tf_data_map_is_reproducible(examples):
  base_seed = 11

  def run_pipeline():
    def build():
      dataset = None
      for example in examples[:4]:
        element = tf.data.Dataset.from_tensors(example)
        dataset = element if dataset is None else dataset.concatenate(element)
      train = _train_fn()
      dataset = dataset.enumerate().map(
          lambda index, example: train(*example,
                                       seed=tf.stack([base_seed, index])),
          num_parallel_calls=2)
      return tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
    run = _Runner(build)
    elements = [run() for _ in examples[:4]]
    run.close()
    return elements

  first, second = run_pipeline(), run_pipeline()
  for element, repeated in zip(first, second):
    for value, repeated_value in zip(element, repeated):
      np.testing.assert_array_equal(value, repeated_value)


def test_training_channels_first_is_transposed(examples):
  def build(*inputs):
    return (_train_fn()(*inputs)[0],
            _train_fn(data_format='NCHW')(*inputs)[0])
  run = _Runner(build, *EXAMPLE_SPECS)
  channels_last, channels_first = run(*examples[2], [1, 2])
  run.close()
  # Grappler may round the two copies differently (see preprocess_for_train).
  np.testing.assert_allclose(channels_first, channels_last.transpose(2, 0, 1),
                             atol=0.05)


def _distort_runner(**kwargs):
  return _Runner(lambda image, seed: ssd_vgg_preprocessing.distort_color(
      image, seed, **kwargs), (tf.float32, [None, None, 3]), EXAMPLE_SPECS[3])


def _small_image(examples):
  """A 16 x 16 patch of a real photo, in [0, 1]."""
  return examples[3][0][100:116, 100:116].astype(np.float32) / 255.


def test_distort_color_leaves_one_image_in_16_untouched(examples):
  image = _small_image(examples)
  run = _distort_runner()
  draws = 800
  untouched = 0
  for seed in range(draws):
    result = run(image, [seed, 0])
    assert result.shape == image.shape
    assert result.min() >= 0. and result.max() <= 1.
    untouched += np.array_equal(result, image)
  run.close()
  # Four distortions, each applied with probability 1/2: 1/16 = 0.0625 (the
  # binomial standard deviation over 800 draws is 0.0086).
  assert 0.036 < untouched / draws < 0.089


def _only(monkeypatch, kept):
  """Makes every distortion but `kept` the identity."""
  identities = dict(BRIGHTNESS_MAX_DELTA=0., CONTRAST_RANGE=(1., 1.),
                    SATURATION_RANGE=(1., 1.), HUE_MAX_DELTA=0.)
  for name, value in identities.items():
    if name != kept:
      monkeypatch.setattr(ssd_vgg_preprocessing, name, value)


def _distortions(examples, monkeypatch, kept, draws=200):
  _only(monkeypatch, kept)
  image = _small_image(examples)
  run = _distort_runner()
  results = [run(image, [seed, 1]) for seed in range(draws)]
  run.close()
  changed = [result for result in results
             if not np.allclose(result, image, atol=1e-6)]
  # Each distortion applies to half of the images.
  assert 0.4 < len(changed) / draws < 0.6
  return image, changed


def test_brightness_adds_up_to_32_levels(examples, monkeypatch):
  image, changed = _distortions(examples, monkeypatch, 'BRIGHTNESS_MAX_DELTA')
  deltas = []
  for result in changed:
    inside = (result > 0.) & (result < 1.)
    delta = np.median((result - image)[inside])
    np.testing.assert_allclose(result, np.clip(image + delta, 0., 1.),
                               atol=1e-6)
    deltas.append(delta)
  assert np.max(np.abs(deltas)) <= 32. / 255. + 1e-6
  assert np.min(deltas) < -28. / 255. and np.max(deltas) > 28. / 255.


def test_contrast_multiplies_as_caffe_does(examples, monkeypatch):
  image, changed = _distortions(examples, monkeypatch, 'CONTRAST_RANGE')
  factors = []
  for result in changed:
    inside = (result < 1.) & (image > 0.05)
    factor = np.median(result[inside] / image[inside])
    # A plain multiply, not tf.image.adjust_contrast's scaling about the mean.
    np.testing.assert_allclose(result, np.clip(image * factor, 0., 1.),
                               atol=1e-5)
    factors.append(factor)
  assert 0.5 - 1e-6 <= np.min(factors) < 0.55
  assert 1.45 < np.max(factors) <= 1.5 + 1e-6


def _hsv(image):
  """OpenCV's float HSV: hue in degrees, saturation and value in [0, 1]."""
  return cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2HSV)


def test_saturation_scales_saturation_only(examples, monkeypatch):
  image, changed = _distortions(examples, monkeypatch, 'SATURATION_RANGE')
  before = _hsv(image)
  coloured = (before[..., 1] > 0.1) & (before[..., 2] > 0.1)
  factors = []
  for result in changed:
    after = _hsv(result)
    np.testing.assert_allclose(after[..., 2], before[..., 2], atol=1e-5)
    factor = np.median(after[..., 1][coloured] / before[..., 1][coloured])
    np.testing.assert_allclose(after[..., 1],
                               np.minimum(before[..., 1] * factor, 1.),
                               atol=2e-3)
    factors.append(factor)
  assert 0.5 - 1e-3 <= np.min(factors) < 0.55
  assert 1.45 < np.max(factors) <= 1.5 + 1e-3


@pytest.mark.parametrize('factor', [0., 0.5, 1., 1.5, 4.])
def test_adjust_saturation_equals_tensorflows_hsv_op(factor):
  # Random colours, plus grey, black, white and fully saturated pixels
  # (4x clips most saturations at 1).
  image = np.random.RandomState(0).uniform(size=[20, 20, 3]).astype(
      np.float32)
  image[0, :4] = [[0.5] * 3, [0.] * 3, [1.] * 3, [1., 0., 0.2]]
  ours, reference = _evaluate(lambda: (
      ssd_vgg_preprocessing.adjust_saturation(tf.constant(image), factor),
      tf.image.adjust_saturation(tf.constant(image), factor)))
  np.testing.assert_allclose(ours, reference, atol=2e-6)
  np.testing.assert_array_equal(ours[0, :3], image[0, :3])


def test_hue_turns_up_to_36_degrees(examples, monkeypatch):
  image, changed = _distortions(examples, monkeypatch, 'HUE_MAX_DELTA')
  before = _hsv(image)
  coloured = (before[..., 1] > 0.2) & (before[..., 2] > 0.2)
  assert coloured.sum() > 20
  shifts = []
  for result in changed:
    after = _hsv(result)
    turn = (after[..., 0] - before[..., 0] + 180.) % 360. - 180.
    shift = np.median(turn[coloured])
    np.testing.assert_allclose(turn[coloured], shift, atol=0.5)
    shifts.append(shift)
  # Caffe's hue_delta 18 on OpenCV's 0-180 scale: +-36 degrees.
  assert np.max(np.abs(shifts)) <= 36.5
  assert np.min(shifts) < -32. and np.max(shifts) > 32.


def test_channel_swap_permutes_channels(examples):
  image = _small_image(examples)
  never, always = (_distort_runner(probability=0.,
                                   channel_swap_probability=probability)
                   for probability in (0., 1.))
  orders = set()
  for seed in range(60):
    np.testing.assert_array_equal(never(image, [seed, 2]), image)
    swapped = always(image, [seed, 2])
    matches = [[np.array_equal(swapped[..., out], image[..., channel])
                for channel in range(3)] for out in range(3)]
    assert all(sum(row) == 1 for row in matches)
    orders.add(tuple(int(np.argmax(row)) for row in matches))
  never.close()
  always.close()
  # Any of the 6 orders, the identity included.
  assert len(orders) == 6
  assert ssd_vgg_preprocessing.CHANNEL_SWAP_PROBABILITY == 0.  # ssd_pascal.py


def test_zoom_out_moves_boxes_with_the_canvas(examples):
  run = _Runner(ssd_vgg_preprocessing.random_zoom_out, *EXAMPLE_SPECS[2:])
  zoomed = 0
  draws = 200
  for seed in range(draws):
    boxes = examples[seed % len(examples)][2]
    canvas, out_boxes = run(boxes, [seed, 3])
    ratio = canvas[2:] - canvas[:2]
    assert ratio[0] == pytest.approx(ratio[1])
    assert 1. <= ratio[0] <= ssd_vgg_preprocessing.ZOOM_OUT_MAX_RATIO
    assert np.all(canvas[:2] <= 0.) and np.all(canvas[2:] >= 1. - 1e-6)
    np.testing.assert_allclose(out_boxes, _in_window(boxes, canvas), atol=1e-6)
    zoomed += ratio[0] > 1.
  run.close()
  assert 0.35 < zoomed / draws < 0.65


def test_zoom_out_by_one_is_identity(examples):
  image, _, boxes = examples[4]

  def build():
    normalized = ssd_vgg_preprocessing.normalize_image(tf.constant(image))
    canvas, zoomed_boxes = ssd_vgg_preprocessing.random_zoom_out(
        tf.constant(boxes), tf.constant([1, 2]), max_ratio=1., probability=1.)
    return (canvas, zoomed_boxes, normalized, tf_image.sample_window(
        normalized, canvas, image.shape[:2]))
  canvas, zoomed_boxes, normalized, resampled = _evaluate(build)
  np.testing.assert_array_equal(canvas, FULL_WINDOW)
  np.testing.assert_array_equal(zoomed_boxes, boxes)
  np.testing.assert_allclose(resampled, normalized, atol=0.01)


def test_canvas_and_crop_pixels(examples):
  image = examples[5][0].astype(np.float32)
  height, width = image.shape[:2]
  # Canvas twice the image, image a quarter side down and right: whole
  # source pixels per output pixel, so resampling copies pixels.
  canvas_window = [-0.25, -0.25, 1.75, 1.75]
  crop_window = [0.25, 0.5, 0.75, 1.]
  canvas, crop = _evaluate(lambda: (
      tf_image.sample_window(tf.constant(image), tf.constant(canvas_window),
                             (2 * height, 2 * width)),
      tf_image.sample_window(tf.constant(image), tf.constant(crop_window),
                             (height // 2, width // 2))))
  expected_canvas = np.zeros((2 * height, 2 * width, 3), np.float32)
  expected_canvas[height // 4:height // 4 + height,
                  width // 4:width // 4 + width] = image
  np.testing.assert_allclose(canvas, expected_canvas, atol=0.01)
  np.testing.assert_allclose(
      crop, image[height // 4:3 * height // 4, width // 2:], atol=0.01)


def test_crop_matches_its_window(examples):
  def build(image, labels, boxes, seed):
    # Crop zoomed-out boxes too, as training does.
    _, canvas_boxes = ssd_vgg_preprocessing.random_zoom_out(boxes, seed + 1)
    return (canvas_boxes,) + ssd_vgg_preprocessing.random_crop(
        labels, canvas_boxes, seed)
  run = _Runner(build, *EXAMPLE_SPECS)
  cropped = 0
  for seed in range(120):
    image, labels, boxes = examples[seed % len(examples)]
    canvas_boxes, window, out_labels, out_boxes = run(image, labels, boxes,
                                                      [seed, 4])
    expected_labels, expected_boxes = _expected_crop(labels, canvas_boxes,
                                                     window)
    np.testing.assert_array_equal(out_labels, expected_labels)
    np.testing.assert_allclose(out_boxes, expected_boxes, atol=1e-5)
    if not np.array_equal(window, FULL_WINDOW):
      cropped += 1
      height, width = window[2:] - window[:2]
      assert np.all(window >= 0.) and np.all(window <= 1. + 1e-6)
      # Caffe's scale is the square root of the area; width over height in
      # normalised coordinates.
      assert 0.3**2 - 1e-6 <= height * width <= 1.
      assert 0.5 - 1e-5 <= width / height <= 2. + 1e-5
  run.close()
  assert cropped > 30


def test_crop_with_high_min_iou_keeps_the_large_object(large_single_objects):
  def build(image, labels, boxes, seed):
    return ssd_vgg_preprocessing.random_crop(labels, boxes, seed,
                                             min_ious=(0.7,))
  run = _Runner(build, *EXAMPLE_SPECS)
  cropped = 0
  for seed in range(100):
    image, labels, boxes = large_single_objects[seed % 4]
    window, out_labels, out_boxes = run(image, labels, boxes, [seed, 5])
    np.testing.assert_array_equal(out_labels, labels)
    assert out_boxes.shape == (1, 4)
    if not np.array_equal(window, FULL_WINDOW):
      cropped += 1
      low = np.maximum(window[:2], boxes[0, :2])
      high = np.minimum(window[2:], boxes[0, 2:])
      intersection = np.prod(np.maximum(high - low, 0.))
      iou = intersection / (_areas(window[np.newaxis])[0] +
                            _areas(boxes)[0] - intersection)
      assert iou >= 0.7 - 1e-5
  run.close()
  assert cropped > 25


# Caffe's batch samplers (ssd_pascal.py), simulated in NumPy: the whole
# frame, then min_jaccard_overlap 0.1 ... 0.9, then max_jaccard_overlap 1
# (None here), each with up to 50 trials; one sample picked uniformly.
CAFFE_MIN_IOUS = (0.1, 0.3, 0.5, 0.7, 0.9, None)


def _numpy_iou(windows, boxes):
  low = np.maximum(windows[:, np.newaxis, :2], boxes[np.newaxis, :, :2])
  high = np.minimum(windows[:, np.newaxis, 2:], boxes[np.newaxis, :, 2:])
  overlap = np.prod(np.maximum(high - low, 0.), axis=-1)
  return overlap / (_areas(windows)[:, np.newaxis] + _areas(boxes) - overlap)


def _caffe_draw(boxes, rng):
  """Caffe's ExpandImage then batch sampling: (zoomed, whole frame kept)."""
  zoomed = rng.uniform() < 0.5
  ratio = rng.uniform(1., 4.) if zoomed else 1.
  offset = rng.uniform(0., ratio - 1., 2)
  boxes = (boxes + np.tile(offset, 2)) / ratio
  num_samples = 1  # The whole frame: no constraint, always satisfied.
  for min_iou in CAFFE_MIN_IOUS:
    # SampleBBox for all 50 trials at once; Caffe stops at the first that
    # satisfies, so whether any does is what counts.
    scale = rng.uniform(0.3, 1., 50)
    aspect_ratio = rng.uniform(np.maximum(0.5, scale**2),
                               np.minimum(2., 1. / scale**2))
    width, height = scale * np.sqrt(aspect_ratio), scale / np.sqrt(aspect_ratio)
    xmin, ymin = rng.uniform(0., 1. - width), rng.uniform(0., 1. - height)
    windows = np.stack([ymin, xmin, ymin + height, xmin + width], axis=1)
    if min_iou is None:  # Every IoU is at most 1: any object will do.
      num_samples += len(boxes) > 0
    else:
      num_samples += np.any(_numpy_iou(windows, boxes) >= min_iou)
  return zoomed, rng.randint(num_samples) == 0


@pytest.mark.parametrize('boxes, max_uncropped', [
    # One centred object a third of the image wide.
    ([[1. / 3., 1. / 3., 2. / 3., 2. / 3.]], 0.35),
    ([[0.1, 0.1, 0.4, 0.3], [0.5, 0.2, 0.8, 0.5], [0.3, 0.6, 0.7, 0.9]], 0.35),
])
def test_crop_statistics_match_caffes_samplers(boxes, max_uncropped):
  boxes = np.array(boxes, np.float32)
  rng = np.random.RandomState(0)
  caffe = np.array([_caffe_draw(boxes, rng) for _ in range(2000)])

  def build(boxes, seed):
    canvas, canvas_boxes = ssd_vgg_preprocessing.random_zoom_out(boxes, seed)
    window, _, _ = ssd_vgg_preprocessing.random_crop(
        tf.range(tf.shape(boxes)[0]), canvas_boxes, seed + 1)
    return canvas, window
  run = _Runner(build, EXAMPLE_SPECS[2], EXAMPLE_SPECS[3])
  draws = [run(boxes, [seed, 8]) for seed in range(1000)]
  run.close()
  zoomed = np.array([np.any(canvas != FULL_WINDOW) for canvas, _ in draws])
  whole = np.array([np.all(window == FULL_WINDOW) for _, window in draws])
  assert whole.mean() <= max_uncropped
  # The binomial standard deviation of 1000 draws is at most 0.016.
  assert abs(whole.mean() - caffe[:, 1].mean()) < 0.04
  # Neither zoomed out nor cropped.
  unchanged = np.mean(~zoomed & whole)
  caffe_unchanged = np.mean(~caffe[:, 0] & caffe[:, 1])
  assert abs(unchanged - caffe_unchanged) < 0.03


def test_frame_without_objects_is_never_cropped():
  run = _Runner(lambda seed: ssd_vgg_preprocessing.random_crop(
      tf.zeros([0], tf.int64), tf.zeros([0, 4]), seed), EXAMPLE_SPECS[3])
  for seed in range(20):
    window, labels, boxes = run([seed, 9])
    np.testing.assert_array_equal(window, FULL_WINDOW)
    assert labels.shape == (0,) and boxes.shape == (0, 4)
  run.close()


@pytest.mark.parametrize('window', [
    [0.2, 0.3, 0.6, 0.9],      # Inside the image.
    [-0.5, -1., 1.5, 2.],      # Zoomed out: the whole image and more.
    [0.5, -0.2, 1.3, 0.4],     # Partly outside.
    [1.5, 1.5, 2., 2.],        # Misses the image.
])
def test_window_region_gives_the_same_view(examples, window):
  image = examples[5][0]
  size = (40, 60)

  def build():
    region, region_window = tf_image.window_region(tf.constant(image),
                                                   tf.constant(window))
    return (tf_image.sample_window(tf.constant(image), tf.constant(window),
                                   size),
            tf_image.sample_window(region, region_window, size),
            tf_image.pixels_in_image(tf.constant(window), size),
            tf.shape(region))
  whole, from_region, in_image, region_shape = _evaluate(build)
  # Up to float rounding of the sample positions, on the 0-255 scale.
  np.testing.assert_allclose(from_region[in_image], whole[in_image],
                             atol=0.01)
  if window[0] > 0:
    assert region_shape[0] < image.shape[0]


@pytest.mark.parametrize('window', [
    [0.2, 0.3, 0.5, 0.6],      # Fewer image pixels than output pixels.
    [-0.2, -0.2, 1.1, 1.1],    # More.
])
def test_distorted_view_matches_distorting_the_whole_image(examples, window):
  image = examples[2][0]

  def build(seed):
    reference = tf_image.sample_window(
        ssd_vgg_preprocessing.distort_color(
            tf.cast(tf.constant(image), tf.float32) / 255., seed),
        tf.constant(window), (150, 150))
    view = ssd_vgg_preprocessing.distorted_view(
        tf.constant(image), tf.constant(window), (150, 150), seed)
    return reference, view, tf_image.pixels_in_image(tf.constant(window),
                                                     (150, 150))
  run = _Runner(build, EXAMPLE_SPECS[3])
  for seed in range(6):
    reference, view, in_image = run([seed, 10])
    difference = np.abs(view - reference)[in_image]
    # Interpolating before or after a per-pixel distortion: the same image
    # but where neighbouring pixels clip or turn differently.
    assert np.mean(difference) < 0.01 and np.percentile(difference, 99) < 0.1
  run.close()


def test_flip_mirrors_image_and_boxes(examples):
  image, _, boxes = examples[6]
  image = image.astype(np.float32)
  run = _Runner(ssd_vgg_preprocessing.random_flip_left_right,
                (tf.float32, [None, None, 3]), *EXAMPLE_SPECS[2:])
  flipped = 0
  for seed in range(20):
    out_image, out_boxes = run(image, boxes, [seed, 6])
    if np.array_equal(out_image, image):
      np.testing.assert_array_equal(out_boxes, boxes)
    else:
      flipped += 1
      np.testing.assert_array_equal(out_image, image[:, ::-1])
      np.testing.assert_allclose(out_boxes[:, [1, 3]], 1. - boxes[:, [3, 1]],
                                 atol=1e-6)
      twice, twice_boxes = run(out_image, out_boxes, [seed, 6])
      np.testing.assert_array_equal(twice, image)
      np.testing.assert_allclose(twice_boxes, boxes, atol=1e-6)
  run.close()
  assert 0 < flipped < 20


# Evaluation on real images.


@pytest.mark.parametrize('resize', ['warp', 'pad'])
def test_eval_boxes_map_back_to_original_pixels(examples, resize):
  image, labels, boxes = examples[7]
  # Half the width, so that 'pad' pads; its boxes stay normalised to it.
  image = np.ascontiguousarray(image[:, :image.shape[1] // 2])
  height, width = image.shape[:2]
  assert image.shape[:2] == (224, 112)
  boxes = boxes * np.array([1., 2., 1., 2.], np.float32)
  boxes = np.concatenate([boxes, [[0.5, 0.5, 0.5, 0.5], [0., 1.2, 1., 1.8]]
                         ]).astype(np.float32)
  labels = np.arange(1, len(boxes) + 1, dtype=np.int64)
  eval_fn = preprocessing_factory.get_preprocessing('ssd_300_vgg')
  out_image, out_labels, out_boxes, bbox_img = _evaluate(lambda: eval_fn(
      tf.constant(image), tf.constant(labels), tf.constant(boxes), OUT_SHAPE,
      resize=resize))
  # Nothing dropped or reordered, even empty or outside boxes.
  np.testing.assert_array_equal(out_labels, labels)
  scale = np.array([height, width] * 2, np.float32)
  in_original = _in_window(out_boxes, bbox_img) * scale
  np.testing.assert_allclose(in_original, boxes * scale, atol=1e-3)
  if resize == 'warp':
    np.testing.assert_array_equal(bbox_img, FULL_WINDOW)
    shown = (0, OUT_SHAPE[1])
  else:
    # 224 x 112 fits 300 x 300 as 300 x 150: columns 75 to 224.
    np.testing.assert_allclose(bbox_img, [0., 0.25, 1., 0.75], atol=1e-6)
    shown = (75, 225)
    assert np.all(out_image[:, :shown[0]] == 0.)
    assert np.all(out_image[:, shown[1]:] == 0.)
  resized = cv2.resize(image.astype(np.float32), (shown[1] - shown[0], 300),
                       interpolation=cv2.INTER_LINEAR)
  np.testing.assert_allclose(out_image[:, shown[0]:shown[1]], resized - MEANS,
                             atol=0.05)

