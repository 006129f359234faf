"""What a training directory holds: the one home of its file names.

A run directory (`--train_dir`) holds, beside TensorFlow's own checkpoint
files and events:
  checkpoint           TensorFlow's index of the checkpoints (newest last);
  ssd_params.json      the SSD parameters, a readable copy of those stored
                       inside every checkpoint;
  training_config.txt  the settings of the run, for a human and a resume;
  .lock                held by the process writing into the folder;
  STOP                 written by evaluation's early stopping: the training
                       loop saves a checkpoint and stops;
  best/                the best checkpoint so far, kept by evaluation;
  eval/                evaluation results, one folder per checkpoint.
Standard library only: every layer may use it.
"""
import os

CHECKPOINT_INDEX_NAME = 'checkpoint'
SSD_PARAMS_FILE_NAME = 'ssd_params.json'
TRAINING_CONFIG_FILE_NAME = 'training_config.txt'
LOCK_FILE_NAME = '.lock'
STOP_FILE_NAME = 'STOP'
BEST_DIR_NAME = 'best'
EVAL_DIR_NAME = 'eval'


def checkpoint_index(directory):
  return os.path.join(directory, CHECKPOINT_INDEX_NAME)


def ssd_params_file(directory):
  return os.path.join(directory, SSD_PARAMS_FILE_NAME)


def training_config_file(train_dir):
  return os.path.join(train_dir, TRAINING_CONFIG_FILE_NAME)


def lock_file(train_dir):
  return os.path.join(train_dir, LOCK_FILE_NAME)


def stop_file(train_dir):
  return os.path.join(train_dir, STOP_FILE_NAME)


def best_dir(train_dir):
  return os.path.join(train_dir, BEST_DIR_NAME)


def default_eval_dir(checkpoint_path):
  """eval/ in the checkpoint's directory (or in the directory given)."""
  directory = (checkpoint_path if os.path.isdir(checkpoint_path)
               else os.path.dirname(checkpoint_path))
  return os.path.join(directory, EVAL_DIR_NAME)
