"""Generated protobuf stubs (tools/protogen.py from protos/); do not edit."""
