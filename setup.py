"""Build hook: generate the gRPC/protobuf stubs from proto/*.proto.

The stubs are never committed (see .gitignore); every build, editable or not, makes them
afresh from the .proto files, so they cannot drift from their source.
"""
from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def generate_stubs() -> None:
    from grpc_tools import protoc  # build-time requirement (pyproject [build-system])
    import grpc_tools

    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "proto").glob("*.proto"))
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    # -I ROOT makes the module names proto.<name>_pb2, importable as the `proto` package.
    args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={ROOT}",
            f"--grpc_python_out={ROOT}", f"--pyi_out={ROOT}", *protos]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {protos}")


class BuildPyWithStubs(build_py):
    def run(self) -> None:
        generate_stubs()
        super().run()


setup(cmdclass={"build_py": BuildPyWithStubs})
