"""Generated protobuf and gRPC stubs for package lift.v1 (`make proto`; do not edit)."""
