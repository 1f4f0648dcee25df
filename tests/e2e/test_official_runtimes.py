"""Functions built on AWS's own runtime clients run unchanged as provided.al2023: the Python
runtime interface client (awslambdaric from PyPI) and a Rust binary built with the
`lambda_runtime` crate (tests/rust-function, built by scripts/test)."""

import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import pytest

from conftest import PYTHON, ROLE, make_zip, unique, zip_dir

RIC_HANDLER = '''
COUNT = 0

def handler(event, context):
    global COUNT
    COUNT += 1
    if event.get("fail"):
        raise ValueError("ric asked to fail")
    return {"count": COUNT, "event": event, "request_id": context.aws_request_id,
            "function_name": context.function_name}
'''


@pytest.fixture(scope="module")
def ric_zip():
    build = tempfile.mkdtemp(prefix="ric-")
    subprocess.run(
        [PYTHON, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", build, "awslambdaric"],
        check=True, timeout=600,
    )
    with open(os.path.join(build, "app.py"), "w") as f:
        f.write(RIC_HANDLER)
    boot = os.path.join(build, "bootstrap")
    with open(boot, "w") as f:
        f.write('#!/bin/sh\nexport PYTHONPATH="$LAMBDA_TASK_ROOT"\nexec python3 -m awslambdaric "$_HANDLER"\n')
    os.chmod(boot, 0o755)
    return zip_dir(build)


def test_awslambdaric_runs_unchanged(lam, ric_zip):
    name = unique("ric")
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": ric_zip}, Timeout=30)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    r = lam.invoke(FunctionName=name, Payload=b'{"via": "ric"}')
    assert "FunctionError" not in r, r["Payload"].read()
    out = json.loads(r["Payload"].read())
    assert out["event"] == {"via": "ric"}
    assert out["request_id"] == r["ResponseMetadata"]["RequestId"]
    assert out["function_name"] == name
    second = json.loads(lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())
    assert second["count"] == out["count"] + 1, "warm environment reused"
    r = lam.invoke(FunctionName=name, Payload=b'{"fail": true}')
    assert r["FunctionError"] == "Unhandled"
    err = json.loads(r["Payload"].read())
    assert err["errorType"] == "ValueError"
    assert err["errorMessage"] == "ric asked to fail"
    assert isinstance(err["stackTrace"], list)


def test_rust_lambda_runtime_binary(lam):
    binary = os.environ.get("RUST_FUNCTION_BIN")
    if not binary or not os.path.exists(binary):
        pytest.skip("RUST_FUNCTION_BIN is not set: scripts/test builds tests/rust-function and sets it")
    with open(binary, "rb") as f:
        code = make_zip({"bootstrap": (f.read(), 0o755)})
    name = unique("rust")
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE, Handler="bootstrap",
                        Code={"ZipFile": code}, MemorySize=256)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    r = lam.invoke(FunctionName=name, Payload=b'{"lang": "rust"}')
    assert "FunctionError" not in r, r["Payload"].read()
    out = json.loads(r["Payload"].read())
    assert out["event"] == {"lang": "rust"}
    assert out["request_id"] == r["ResponseMetadata"]["RequestId"]
    assert out["function_name"] == name
    assert out["memory"] == 256
    assert out["version"] == "$LATEST"
    assert out["invoked_function_arn"].endswith(":function:%s" % name)
    assert json.loads(lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())["count"] == out["count"] + 1
    r = lam.invoke(FunctionName=name, Payload=b'{"fail": true}')
    assert r["FunctionError"] == "Unhandled"
    err = json.loads(r["Payload"].read())
    assert err["errorMessage"] == "the Rust function was asked to fail"
