"""gRPC servicers of the coordinator."""
