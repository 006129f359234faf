"""The training library: typed configuration, input, graph, step runner and
loop, learning rates and optimizers."""
