"""boto3 against Nimbus: the Lambda control plane with waiters and paginators, Invoke, errors,
and the CloudWatch Logs read API."""

import base64
import hashlib
import json
import re
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, create_python, make_zip, unique, wait_for, PY_HANDLER


def error_of(excinfo):
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"].get("Message", "")


def test_function_lifecycle_with_waiters(lam):
    name = unique("life")
    zip_bytes = make_zip({"lambda_function.py": PY_HANDLER})
    created = lam.create_function(
        FunctionName=name, Runtime="python3.11", Role=ROLE,
        Handler="lambda_function.lambda_handler", Code={"ZipFile": zip_bytes},
    )
    assert created["State"] == "Pending"
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    got = lam.get_function(FunctionName=name)
    cfg = got["Configuration"]
    assert cfg["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:%s" % name
    assert cfg["Runtime"] == "python3.11"
    assert cfg["Handler"] == "lambda_function.lambda_handler"
    assert cfg["MemorySize"] == 128 and cfg["Timeout"] == 3
    assert cfg["State"] == "Active" and cfg["LastUpdateStatus"] == "Successful"
    assert cfg["CodeSha256"] == base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()
    assert cfg["CodeSize"] == len(zip_bytes)
    with urllib.request.urlopen(got["Code"]["Location"]) as r:
        assert r.read() == zip_bytes

    new_zip = make_zip({"lambda_function.py": PY_HANDLER + "\nVERSION = 2\n"})
    lam.update_function_code(FunctionName=name, ZipFile=new_zip)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    cfg = lam.get_function_configuration(FunctionName=name)
    assert cfg["CodeSha256"] == base64.b64encode(hashlib.sha256(new_zip).digest()).decode()

    lam.update_function_configuration(FunctionName=name, MemorySize=512, Timeout=20,
                                      Environment={"Variables": {"MY_VAR": "configured"}})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    cfg = lam.get_function_configuration(FunctionName=name)
    assert (cfg["MemorySize"], cfg["Timeout"]) == (512, 20)
    out = json.loads(lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())
    assert out["my_var"] == "configured"
    assert out["memory_limit_in_mb"] == "512"

    lam.delete_function(FunctionName=name)
    with pytest.raises(ClientError) as e:
        lam.get_function(FunctionName=name)
    assert error_of(e)[:2] == ("ResourceNotFoundException", 404)


def test_list_functions_paginator(lam):
    prefix = unique("page")
    names = ["%s-%d" % (prefix, i) for i in range(5)]
    for n in names:
        lam.create_function(FunctionName=n, Runtime="python3.11", Role=ROLE,
                            Handler="lambda_function.lambda_handler",
                            Code={"ZipFile": make_zip({"lambda_function.py": PY_HANDLER})})
    pages = list(lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2}))
    seen = [f["FunctionName"] for p in pages for f in p["Functions"]]
    assert all(n in seen for n in names)
    assert len(seen) == len(set(seen)), "no function listed twice"
    assert all(len(p["Functions"]) <= 2 for p in pages)
    limited = lam.get_paginator("list_functions").paginate(PaginationConfig={"MaxItems": 3, "PageSize": 2}).build_full_result()
    assert len(limited["Functions"]) == 3
    assert "NextToken" in limited


def test_invoke_types_and_log_tail(lam):
    name = unique("inv")
    create_python(lam, name)
    r = lam.invoke(FunctionName=name, Payload=json.dumps({"hello": "world"}), LogType="Tail")
    assert r["StatusCode"] == 200
    assert r["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in r
    out = json.loads(r["Payload"].read())
    assert out["event"] == {"hello": "world"}
    assert out["function_name"] == name
    request_id = r["ResponseMetadata"]["RequestId"]
    assert out["aws_request_id"] == request_id
    assert out["remaining"] > 0
    tail = base64.b64decode(r["LogResult"]).decode()
    assert "START RequestId: %s Version: $LATEST" % request_id in tail
    assert "END RequestId: %s" % request_id in tail
    assert 'e2e-print {"hello": "world"}' in tail
    report = [l for l in tail.splitlines() if l.startswith("REPORT RequestId: %s" % request_id)][0]
    assert re.match(
        r"REPORT RequestId: \S+\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\tMax Memory Used: \d+ MB\t",
        report,
    ), report

    r = lam.invoke(FunctionName=name, Payload=json.dumps({"fail": True}))
    assert r["StatusCode"] == 200
    assert r["FunctionError"] == "Unhandled"
    err = json.loads(r["Payload"].read())
    assert err["errorType"] == "RuntimeError"
    assert err["errorMessage"] == "asked to fail"
    assert isinstance(err["stackTrace"], list) and err["stackTrace"]

    assert lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"async": 1}')["StatusCode"] == 202
    assert lam.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204
    # Warm reuse: the module-level counter keeps counting.
    counts = [json.loads(lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())["count"] for _ in range(2)]
    assert counts[1] == counts[0] + 1


def test_errors_are_aws_shaped(lam):
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=unique("missing"), Payload=b"{}")
    assert error_of(e)[:2] == ("ResourceNotFoundException", 404)

    name = unique("err")
    create_python(lam, name)
    with pytest.raises(ClientError) as e:
        create_python(lam, name)
    assert error_of(e)[:2] == ("ResourceConflictException", 409)

    base = dict(Runtime="python3.11", Role=ROLE, Handler="lambda_function.lambda_handler",
                Code={"ZipFile": make_zip({"lambda_function.py": PY_HANDLER})})
    for extra, code in [
        ({"Timeout": 901}, "ValidationException"),
        ({"MemorySize": 20000}, "ValidationException"),
        ({"Environment": {"Variables": {"AWS_REGION": "x"}}}, "InvalidParameterValueException"),
        ({"Environment": {"Variables": {"BIG": "x" * 4100}}}, "InvalidParameterValueException"),
        ({"Code": {"ZipFile": b"definitely not a zip"}}, "InvalidParameterValueException"),
        ({"Runtime": "cobol85"}, "ValidationException"),
    ]:
        kwargs = dict(base, FunctionName=unique("bad"))
        kwargs.update(extra)
        with pytest.raises(ClientError) as e:
            lam.create_function(**kwargs)
        got = error_of(e)
        assert got[:2] == (code, 400), (extra.keys(), got)

    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, Payload=b'"' + b"x" * 6291455 + b'"')
    code, status, message = error_of(e)
    assert (code, status) == ("RequestEntityTooLargeException", 413)
    assert message == "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'"' + b"x" * 1048576 + b'"')
    assert error_of(e)[:2] == ("RequestEntityTooLargeException", 413)
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, Payload=b"this is not json")
    assert error_of(e)[:2] == ("InvalidRequestContentException", 400)


def test_account_settings(lam):
    s = lam.get_account_settings()
    assert s["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert s["AccountLimit"]["CodeSizeUnzipped"] == 262144000
    assert s["AccountUsage"]["FunctionCount"] >= 0


def test_nodejs_function(lam):
    name = unique("node")
    code = make_zip({"index.js": "exports.handler = async (event, context) => ({ fn: context.functionName, id: context.awsRequestId, mem: context.memoryLimitInMB, left: context.getRemainingTimeInMillis(), event });\n"})
    lam.create_function(FunctionName=name, Runtime="nodejs20.x", Role=ROLE, Handler="index.handler", Code={"ZipFile": code})
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    r = lam.invoke(FunctionName=name, Payload=b'{"n": 1}')
    out = json.loads(r["Payload"].read())
    assert out["fn"] == name
    assert out["id"] == r["ResponseMetadata"]["RequestId"]
    assert out["mem"] == "128" and out["left"] > 0
    assert out["event"] == {"n": 1}


def test_cloudwatch_logs(lam, logs):
    name = unique("logs")
    create_python(lam, name)
    lam.invoke(FunctionName=name, Payload=b'{"marker": "find-me-in-logs"}')
    group = "/aws/lambda/%s" % name
    groups = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [group]
    streams = wait_for(lambda: logs.describe_log_streams(logGroupName=group)["logStreams"])
    assert re.match(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$", streams[0]["logStreamName"])
    def messages():
        ev = logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"], startFromHead=True)["events"]
        msgs = [e["message"] for e in ev]
        return msgs if any(m.startswith("REPORT") for m in msgs) else None
    msgs = wait_for(messages)
    assert any(m.startswith("START RequestId:") for m in msgs)
    assert any(m.startswith("END RequestId:") for m in msgs)
    assert any('find-me-in-logs' in m for m in msgs)
    found = logs.filter_log_events(logGroupName=group, filterPattern="find-me-in-logs")["events"]
    assert len(found) == 1 and "find-me-in-logs" in found[0]["message"]
    with pytest.raises(ClientError) as e:
        logs.get_log_events(logGroupName="/aws/lambda/" + unique("none"), logStreamName="x")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_reserved_concurrency(lam):
    name = unique("rc")
    create_python(lam, name)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)
    before = lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    assert lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)[
        "ReservedConcurrentExecutions"] == 5
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    assert lam.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 5}
    assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == before - 5
    with pytest.raises(ClientError) as e:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=100000)
    code, status, message = error_of(e)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "below its minimum value of [100]" in message

    # Zero throttles every invocation, with the reason AWS gives.
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, Payload=b"{}")
    assert error_of(e)[:2] == ("TooManyRequestsException", 429)
    assert e.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"

    lam.delete_function_concurrency(FunctionName=name)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)
    assert json.loads(lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())["count"] == 1
    lam.delete_function(FunctionName=name)


def test_event_invoke_config_and_async_destination(lam, logs):
    name, sink = unique("evt"), unique("sink")
    create_python(lam, name)
    create_python(lam, sink)
    sink_arn = lam.get_function(FunctionName=sink)["Configuration"]["FunctionArn"]
    cfg = lam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0, MaximumEventAgeInSeconds=300,
        DestinationConfig={"OnSuccess": {"Destination": sink_arn}})
    assert cfg["MaximumRetryAttempts"] == 0 and cfg["MaximumEventAgeInSeconds"] == 300
    assert cfg["FunctionArn"].endswith(":function:%s:$LATEST" % name)
    assert cfg["DestinationConfig"]["OnSuccess"]["Destination"] == sink_arn
    assert cfg["LastModified"].year >= 2024
    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert got["DestinationConfig"] == cfg["DestinationConfig"]
    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert [c["FunctionArn"] for c in listed] == [cfg["FunctionArn"]]
    updated = lam.update_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    assert updated["MaximumRetryAttempts"] == 1 and updated["MaximumEventAgeInSeconds"] == 300

    r = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"via": "boto3"}')
    assert r["StatusCode"] == 202
    request_id = r["ResponseMetadata"]["RequestId"]
    # The sink's handler prints its event: the invocation record.
    def record():
        try:
            out = logs.filter_log_events(logGroupName="/aws/lambda/" + sink)
        except ClientError:  # the sink has not run yet: no log group
            return None
        for e in out["events"]:
            if e["message"].startswith("e2e-print "):
                return json.loads(e["message"][len("e2e-print "):])
        return None
    rec = wait_for(record, timeout=20)
    assert rec["requestContext"]["requestId"] == request_id
    assert rec["requestContext"]["condition"] == "Success"
    assert rec["requestPayload"] == {"via": "boto3"}
    assert rec["responsePayload"]["event"] == {"via": "boto3"}

    with pytest.raises(ClientError) as e:
        lam.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=30000)
    assert error_of(e)[:2] == ("ValidationException", 400)
    lam.delete_function_event_invoke_config(FunctionName=name)
    with pytest.raises(ClientError) as e:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert error_of(e)[:2] == ("ResourceNotFoundException", 404)


def test_tags(lam):
    name = unique("tags")
    create_python(lam, name, Tags={"team": "a"})
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    assert lam.list_tags(Resource=arn)["Tags"] == {"team": "a"}
    lam.tag_resource(Resource=arn, Tags={"env": "test", "team": "b"})
    assert lam.list_tags(Resource=arn)["Tags"] == {"env": "test", "team": "b"}
    assert lam.get_function(FunctionName=name)["Tags"] == {"env": "test", "team": "b"}
    lam.untag_resource(Resource=arn, TagKeys=["team", "missing"])
    assert lam.list_tags(Resource=arn)["Tags"] == {"env": "test"}
    with pytest.raises(ClientError) as e:
        lam.list_tags(Resource=arn.replace(name, name + "-nope"))
    assert error_of(e)[:2] == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as e:
        lam.tag_resource(Resource=arn, Tags={"aws:x": "1"})
    assert error_of(e)[:2] == ("InvalidParameterValueException", 400)


def test_versions_and_aliases(lam):
    name = unique("ver")
    cfg = create_python(lam, name, Publish=True, Environment={"Variables": {"MY_VAR": "v1"}})
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    versions = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"MY_VAR": "v2"}})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    v2 = lam.publish_version(FunctionName=name, Description="second")
    assert v2["Version"] == "2" and v2["FunctionArn"].endswith(":%s:2" % name)
    alias = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1",
                             RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
    assert alias["AliasArn"].endswith(":%s:live" % name)
    assert lam.get_alias(FunctionName=name, Name="live")["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.5}}
    seen = set()
    for _ in range(40):
        r = lam.invoke(FunctionName=name, Qualifier="live", Payload=b"{}")
        seen.add((r["ExecutedVersion"], json.loads(r["Payload"].read())["my_var"]))
    assert seen == {("1", "v1"), ("2", "v2")}
    lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2", RoutingConfig={"AdditionalVersionWeights": {}})
    r = lam.invoke(FunctionName=name + ":live", Payload=b"{}")
    assert r["ExecutedVersion"] == "2"
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name)["Aliases"]] == ["live"]
    with pytest.raises(ClientError) as e:
        lam.delete_function(FunctionName=name, Qualifier="2")
    assert error_of(e)[:2] == ("ResourceConflictException", 409)
    lam.delete_alias(FunctionName=name, Name="live")
    lam.delete_function(FunctionName=name, Qualifier="2")
    with pytest.raises(ClientError) as e:
        lam.get_function(FunctionName=name, Qualifier="2")
    assert error_of(e)[:2] == ("ResourceNotFoundException", 404)
    assert lam.get_function_configuration(FunctionName=name, Qualifier="1")["Environment"]["Variables"]["MY_VAR"] == "v1"


def test_resource_policy(lam):
    """AddPermission / GetPolicy / RemovePermission as deployment tools use them (API Gateway
    and function URL permissions), with AWS's statement shapes and errors."""
    name = unique("policy")
    fn = create_python(lam, name)
    arn = fn["FunctionArn"]
    with pytest.raises(ClientError) as e:
        lam.get_policy(FunctionName=name)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"

    source = "arn:aws:execute-api:us-east-1:000000000000:abc123/*/POST/sms"
    out = lam.add_permission(FunctionName=name, StatementId="apigw", Action="lambda:InvokeFunction",
                             Principal="apigateway.amazonaws.com", SourceArn=source)
    statement = json.loads(out["Statement"])
    assert statement == {"Sid": "apigw", "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                         "Action": "lambda:InvokeFunction", "Resource": arn,
                         "Condition": {"ArnLike": {"AWS:SourceArn": source}}}
    lam.add_permission(FunctionName=name, StatementId="url", Action="lambda:InvokeFunctionUrl", Principal="*",
                       FunctionUrlAuthType="NONE")
    with pytest.raises(ClientError) as e:
        lam.add_permission(FunctionName=name, StatementId="apigw", Action="lambda:InvokeFunction", Principal="*")
    assert e.value.response["Error"]["Code"] == "ResourceConflictException"
    with pytest.raises(ClientError) as e:
        lam.add_permission(FunctionName=name, StatementId="bad", Action="s3:GetObject", Principal="*")
    assert e.value.response["Error"]["Code"] == "ValidationException"

    got = lam.get_policy(FunctionName=name)
    doc = json.loads(got["Policy"])
    assert doc["Version"] == "2012-10-17"
    assert [s["Sid"] for s in doc["Statement"]] == ["apigw", "url"]
    assert doc["Statement"][1]["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}

    # A qualified policy is separate; a stale RevisionId is refused.
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.add_permission(FunctionName=name, Qualifier=version, StatementId="v", Action="lambda:InvokeFunction",
                       Principal="123456789012")
    vdoc = json.loads(lam.get_policy(FunctionName=name, Qualifier=version)["Policy"])
    assert vdoc["Statement"][0]["Resource"] == "%s:%s" % (arn, version)
    assert vdoc["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    with pytest.raises(ClientError) as e:
        lam.remove_permission(FunctionName=name, StatementId="apigw", RevisionId="stale")
    assert e.value.response["Error"]["Code"] == "PreconditionFailedException"

    lam.remove_permission(FunctionName=name, StatementId="apigw", RevisionId=got["RevisionId"])
    with pytest.raises(ClientError) as e:
        lam.remove_permission(FunctionName=name, StatementId="apigw")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    lam.remove_permission(FunctionName=name, StatementId="url")
    with pytest.raises(ClientError) as e:
        lam.get_policy(FunctionName=name)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    lam.delete_function(FunctionName=name)
    with pytest.raises(ClientError) as e:
        lam.get_policy(FunctionName=name)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
