"""The typed configuration of a training run, one dataclass per group.

The field defaults are the only defaults of the training settings:
train_ssd_network.py's flags take theirs from these fields.  Besides the
groups, the recipe a run that no pretrained checkpoint starts takes, and
what an unset num_epochs_per_decay means.
"""
import dataclasses
import typing

from datasets import dataset_flags
from datasets import dataset_utils
from deployment import cluster as cluster_lib
from utils.checkpointing import checkpoints
from utils.common import paths


@dataclasses.dataclass
class DataOptions:
  """Which data to train on and how it is read and augmented."""
  # Which split of which converted dataset (the dataset flags).
  dataset: dataset_flags.DatasetConfig = dataset_flags.DatasetConfig()
  batch_size: int = 8
  num_readers: int = 4
  num_preprocessing_threads: int = 4
  # Serialized records the shuffle may hold (its buffer in records follows
  # from the split's mean record size).
  shuffle_buffer_mib: int = dataset_utils.SHUFFLE_BUFFER_MIB
  augmentation: str = 'ssd'


@dataclasses.dataclass
class ModelOptions:
  """The network, and the checkpoint a fresh run starts from."""
  model_name: str = 'ssd_300_vgg'
  num_classes: typing.Optional[int] = None
  data_format: str = 'NHWC'
  # Keep probability of the dropout after conv6/conv7; 1: none (Caffe's).
  dropout_keep_prob: float = 1.0
  # Batch normalisation after every backbone and extra-block convolution.
  batch_norm: bool = False
  # Anchor sizes: a preset of nets.ssd_vgg_300.ANCHOR_SIZES or
  # comma-separated pixels; None: the network's default.
  anchor_sizes: typing.Optional[str] = None
  checkpoint_path: typing.Optional[str] = None
  checkpoint_model_scope: typing.Optional[str] = None
  checkpoint_exclude_scopes: typing.Optional[str] = None
  ignore_missing_vars: bool = False
  # From TF-slim's vgg_16: conv6/conv7 sampled from its fc6/fc7 (the SSD
  # paper's reduced VGG16) instead of random.
  restore_reduced_fc: bool = True


@dataclasses.dataclass
class LossOptions:
  """The SSD loss: matching, hard negatives, weights."""
  # IoU from which an anchor is a positive match (the encoding's).
  match_threshold: float = 0.5
  # Anchors with IoU in [negative_threshold, match_threshold) are ignored
  # (neither positive nor negative); None: no such band (Caffe's).
  negative_threshold: typing.Optional[float] = None
  negative_ratio: float = 3.0
  loss_alpha: float = 1.0
  label_smoothing: float = 0.0


# Marks the OptimisationOptions fields that are one optimizer's
# hyper-parameters (those train_tools.configure_optimizer takes).
_HYPERPARAMETER = 'optimizer_hyperparameter'


def _hyperparameter(default):
  return dataclasses.field(default=default, metadata={_HYPERPARAMETER: True})


@dataclasses.dataclass
class OptimisationOptions:
  """Regularisation, learning-rate schedule, optimizer, length of the run."""
  weight_decay: float = 0.0005
  optimizer: str = 'adam'
  learning_rate: float = 0.001
  learning_rate_decay_type: str = 'exponential'
  end_learning_rate: float = 0.0001
  learning_rate_decay_factor: float = 0.94
  # Exponential: epochs per x learning_rate_decay_factor (None:
  # EXPONENTIAL_EPOCHS_PER_DECAY); polynomial: epochs the decay spans
  # (None: the whole run, to max_number_of_steps).
  num_epochs_per_decay: typing.Optional[float] = None
  warmup_steps: int = 100
  # Piecewise schedule: global steps where the rate changes, and the rates.
  learning_rate_boundaries: typing.Sequence[int] = ()
  learning_rate_values: typing.Sequence[float] = ()
  moving_average_decay: typing.Optional[float] = None
  trainable_scopes: typing.Optional[str] = None
  max_number_of_steps: typing.Optional[int] = None
  # Minutes of training steps after which the run saves and stops.
  max_training_minutes: typing.Optional[float] = None
  # The optimizers' hyper-parameters (TF-slim's train_image_classifier
  # defaults); each optimizer reads its own.
  adadelta_rho: float = _hyperparameter(0.95)
  adadelta_epsilon: float = _hyperparameter(1e-6)
  adagrad_initial_accumulator_value: float = _hyperparameter(0.1)
  adam_beta1: float = _hyperparameter(0.9)
  adam_beta2: float = _hyperparameter(0.999)
  adam_epsilon: float = _hyperparameter(1e-8)
  ftrl_learning_rate_power: float = _hyperparameter(-0.5)
  ftrl_initial_accumulator_value: float = _hyperparameter(0.1)
  ftrl_l1: float = _hyperparameter(0.0)
  ftrl_l2: float = _hyperparameter(0.0)
  momentum: float = _hyperparameter(0.9)
  rmsprop_decay: float = _hyperparameter(0.9)
  rmsprop_momentum: float = _hyperparameter(0.9)
  rmsprop_epsilon: float = _hyperparameter(1.0)

  def optimizer_hyperparameters(self):
    """{name: value} of every optimizer's hyper-parameters."""
    return {field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.metadata.get(_HYPERPARAMETER)}


# {name: default} of the optimizers' hyper-parameters.
OPTIMIZER_HYPERPARAMETERS = OptimisationOptions().optimizer_hyperparameters()

# Epochs per exponential decay step when num_epochs_per_decay is not given.
EXPONENTIAL_EPOCHS_PER_DECAY = 2.0
# Epochs a polynomial decay spans in a run without a step limit: the span
# of the from-scratch recipe's measurement (README "Results").
POLYNOMIAL_EPOCHS_WITHOUT_STEP_LIMIT = 25.0


@dataclasses.dataclass
class DeploymentOptions:
  """Clones, replicas, the cluster, precision and device memory."""
  num_clones: int = 1
  clone_on_cpu: bool = False
  worker_replicas: int = 1
  num_ps_tasks: int = 0
  task: int = 0
  # This process's place in a multi-machine cluster; None for a local run.
  cluster: typing.Optional[cluster_lib.Cluster] = None
  sync_replicas: bool = False
  replicas_to_aggregate: typing.Optional[int] = None
  ps_exit_when_done: bool = True
  # Bounds of the cluster's waits (deployment.cluster.Timeouts), in seconds.
  cluster_timeout_secs: float = 600.0
  ps_idle_secs: float = 120.0
  stop_grace_secs: float = 60.0
  # The precision the run computes in (train_ssd_network.py resolves its
  # --precision=auto for the machine).
  precision: str = 'float32'
  gpu_memory_fraction: typing.Optional[float] = None

  @property
  def is_chief(self):
    """Worker 0 (or the only process) initialises, saves and summarises."""
    return self.cluster is None or self.cluster.is_chief

  @property
  def cluster_timeouts(self):
    return cluster_lib.Timeouts(self.cluster_timeout_secs, self.ps_idle_secs,
                                self.stop_grace_secs)

  @property
  def aggregated_replicas(self):
    """Workers' steps one synchronous global step aggregates (default: every
    worker)."""
    return self.replicas_to_aggregate or self.worker_replicas

  def images_per_step(self, batch_size):
    """Images one global step trains on (all clones and replicas)."""
    images = batch_size * self.num_clones
    if self.sync_replicas:
      images *= self.aggregated_replicas
    return images


@dataclasses.dataclass
class LoggingOptions:
  """Where and how often the run logs, summarises and saves."""
  train_dir: str = paths.FINE_TUNING_DIR
  log_every_n_steps: int = 10
  save_summaries_secs: int = 60
  save_interval_secs: int = 600
  max_to_keep: int = 5
  keep_checkpoint_every_n_hours: float = 1.0
  # Histograms of activations and weights and activation sparsity (costly,
  # and they bury the losses in TensorBoard).
  summarize_histograms: bool = False


@dataclasses.dataclass
class TrainingConfig:
  """Everything a training run needs to know, grouped."""
  data: DataOptions = dataclasses.field(default_factory=DataOptions)
  model: ModelOptions = dataclasses.field(default_factory=ModelOptions)
  loss: LossOptions = dataclasses.field(default_factory=LossOptions)
  optimisation: OptimisationOptions = dataclasses.field(
      default_factory=OptimisationOptions)
  deployment: DeploymentOptions = dataclasses.field(
      default_factory=DeploymentOptions)
  logging: LoggingOptions = dataclasses.field(default_factory=LoggingOptions)
  # Graph-level random seed (also seeds the augmentation); None: random.
  seed: typing.Optional[int] = None

  GROUPS = ('data', 'model', 'loss', 'optimisation', 'deployment', 'logging')

  def settings(self):
    """[(name, value)] of every setting, group by group, named as its flag
    (for the logs)."""
    items = []
    for group in self.GROUPS:
      options = getattr(self, group)
      for field in dataclasses.fields(options):
        items += _flag_settings(field.name, getattr(options, field.name))
    items.append(('seed', self.seed))
    return items


def _flag_settings(name, value):
  """[(flag name, value)] of one option: a dataset or cluster option is
  spelled as the flags that give it."""
  if isinstance(value, dataset_flags.DatasetConfig):
    return list(value._asdict().items())
  if name == 'cluster':
    if value is None:
      return []
    return [('ps_hosts', ','.join(value.ps_hosts)),
            ('worker_hosts', ','.join(value.worker_hosts)),
            ('job_name', value.job_name)]
  return [(name, value)]


# The defaults of a run that no pretrained checkpoint starts: the recipe
# with the best held-out mAP from scratch (bench/generalises.py, README
# "Results"), {option group: {setting: value}}.
FROM_SCRATCH_RECIPE_NAME = 'bn'
FROM_SCRATCH_RECIPE = {
    'model': {'batch_norm': True},
    'optimisation': {'optimizer': 'adam', 'learning_rate': 0.001,
                     'end_learning_rate': 0.0001,
                     'learning_rate_decay_type': 'polynomial',
                     'warmup_steps': 100},
}


def pretrained_checkpoint(model):
  """The checkpoint a fresh run starts from: model.checkpoint_path, else the
  latest in checkpoints.PRETRAINED_DIR, else None (from scratch)."""
  return model.checkpoint_path or checkpoints.find_checkpoint(
      checkpoints.PRETRAINED_DIR)
