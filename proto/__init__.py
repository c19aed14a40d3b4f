"""Protocol definitions (*.proto) and the stubs generated from them at build time.

Import generated modules as `from proto import raft_pb2, storage_pb2_grpc`.
"""
