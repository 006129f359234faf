"""The training library, one concept a module:

  config           the typed configuration, source of every setting's default
  input_pipeline   what the clones dequeue (TFRecords or one fixed batch)
  graph            the network, its clones, losses, optimizer, guarded update
  step_runner      one step of tf_slim's loop: run, log, summarise, stop
  initialisation   how the variables start: resumed, pretrained or scratch
  run_description  training_config.txt and the run's TensorBoard text/hparams
  loop             run_training: checks, lock, tf_slim's training loop
  train_tools      learning rates, optimizers, clone summaries, sessions
"""
