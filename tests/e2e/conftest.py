"""End-to-end fixtures: a real `nimbus server` on a free loopback port, and real AWS clients
(boto3, the aws CLI) pointed at it through AWS_ENDPOINT_URL / endpoint_url."""

import http.client
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
import zipfile

import boto3
import pytest
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NIMBUS_BIN = os.environ.get("NIMBUS_BIN", os.path.join(ROOT, "target", "debug", "nimbus"))
ROLE = "arn:aws:iam::000000000000:role/lambda-role"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A port of the host's loopback that functions may reach (sandboxed functions reach nothing else
# of the host): tests serve what their functions fetch there.
HOST_PORT = _free_port()


@pytest.fixture(scope="session")
def host_port():
    return HOST_PORT


@pytest.fixture(scope="session")
def server():
    data = tempfile.mkdtemp(prefix="nimbus-e2e-")
    config = os.path.join(data, "nimbus.toml")
    with open(config, "w") as f:
        f.write("[sandbox]\nhost_ports = [%d]\n" % HOST_PORT)
    proc = subprocess.Popen(
        [NIMBUS_BIN, "server", "--listen", "127.0.0.1:0", "--data-dir", data, "--config", config],
        stdout=subprocess.PIPE,
        env=dict(os.environ, NIMBUS_LOG="error"),
    )
    line = proc.stdout.readline().decode().strip()
    assert line.startswith("Nimbus listening on "), line
    url = line[len("Nimbus listening on "):]
    yield url
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _client(service, url):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, read_timeout=60),
    )


@pytest.fixture(scope="session")
def lam(server):
    return _client("lambda", server)


@pytest.fixture(scope="session")
def logs(server):
    return _client("logs", server)


@pytest.fixture(scope="session")
def sqs(server):
    return _client("sqs", server)


@pytest.fixture(scope="session")
def apigw(server):
    return _client("apigatewayv2", server)


@pytest.fixture(scope="session")
def rest(server):
    return _client("apigateway", server)


def raw_request(url, method, path, body=None, headers=()):
    """Sends one HTTP request to `url` + `path` with the headers as given (repeated names kept),
    connecting to the server's loopback port whatever host the URL names (so host-style
    endpoint URLs work without DNS). Returns (status, headers, body)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection("127.0.0.1", u.port, timeout=30)
    conn.putrequest(method, u.path.rstrip("/") + path, skip_host=True)
    conn.putheader("Host", u.netloc)
    for k, v in headers:
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(body or b"")))
    conn.endheaders(body)
    r = conn.getresponse()
    return r.status, r.headers, r.read()


@pytest.fixture(scope="session")
def cli_env(server):
    return dict(
        os.environ,
        AWS_ENDPOINT_URL=server,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_PAGER="",
    )


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def make_zip(files):
    """files: {name: (text or bytes, mode)} or {name: text}."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, spec in files.items():
            data, mode = spec if isinstance(spec, tuple) else (spec, 0o644)
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()


def zip_dir(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for base, _dirs, files in os.walk(path):
            for f in files:
                full = os.path.join(base, f)
                rel = os.path.relpath(full, path)
                info = zipfile.ZipInfo(rel)
                info.external_attr = (0o100000 | (os.stat(full).st_mode & 0o777)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(full, "rb") as fh:
                    z.writestr(info, fh.read())
    return buf.getvalue()


PY_HANDLER = '''
import json, os
COUNT = 0

def lambda_handler(event, context):
    global COUNT
    COUNT += 1
    print("e2e-print", json.dumps(event))
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {
        "count": COUNT,
        "event": event,
        "function_name": context.function_name,
        "aws_request_id": context.aws_request_id,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining": context.get_remaining_time_in_millis(),
        "my_var": os.environ.get("MY_VAR"),
    }
'''


def create_python(lam, name, **extra):
    kwargs = dict(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="lambda_function.lambda_handler",
        Code={"ZipFile": make_zip({"lambda_function.py": PY_HANDLER})},
    )
    kwargs.update(extra)
    resp = lam.create_function(**kwargs)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return resp


def wait_for(fn, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value or time.time() > deadline:
            return value
        time.sleep(0.1)


PYTHON = sys.executable
