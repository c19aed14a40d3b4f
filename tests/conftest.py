import os

# gRPC's C core logs every GOAWAY of a closing peer at INFO; tests kill peers on purpose.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
