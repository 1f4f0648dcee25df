"""The aws CLI against Nimbus through AWS_ENDPOINT_URL."""

import json
import os
import subprocess
import sys

from conftest import ROLE, PY_HANDLER, make_zip, unique, wait_for

AWS = os.path.join(os.path.dirname(sys.executable), "aws")


def aws(env, *args):
    out = subprocess.run([AWS, *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_aws_cli_create_invoke_list_logs(cli_env, tmp_path):
    name = unique("cli")
    zpath = tmp_path / "function.zip"
    zpath.write_bytes(make_zip({"lambda_function.py": PY_HANDLER}))
    created = json.loads(aws(cli_env, "lambda", "create-function", "--function-name", name,
                             "--runtime", "python3.11", "--handler", "lambda_function.lambda_handler",
                             "--role", ROLE, "--zip-file", "fileb://%s" % zpath))
    assert created["FunctionName"] == name
    aws(cli_env, "lambda", "wait", "function-active-v2", "--function-name", name)
    out_file = tmp_path / "out.json"
    meta = json.loads(aws(cli_env, "lambda", "invoke", "--function-name", name,
                          "--payload", '{"from": "cli"}',
                          str(out_file)))
    assert meta["StatusCode"] == 200
    assert meta["ExecutedVersion"] == "$LATEST"
    assert json.loads(out_file.read_text())["event"] == {"from": "cli"}
    listed = json.loads(aws(cli_env, "lambda", "list-functions"))
    assert name in [f["FunctionName"] for f in listed["Functions"]]

    def found():
        events = json.loads(aws(cli_env, "logs", "filter-log-events", "--log-group-name", "/aws/lambda/%s" % name))["events"]
        return [e for e in events if e["message"].startswith("REPORT RequestId:")]
    assert wait_for(found)
