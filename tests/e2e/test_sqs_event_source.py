"""SQS → Lambda event source mappings through boto3: the mapping API (shapes and errors as
recorded against AWS in LocalStack's AWS-validated snapshots,
tests/aws/services/lambda_/event_source_mapping/test_lambda_integration_sqs.snapshot.json),
batches delivered as Lambda's SQS event, deletion on success, partial batch failures with
ReportBatchItemFailures, event filtering, disabling and deletion."""

import hashlib
import http.server
import json
import threading
import time

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, make_zip, unique, wait_for

# Prints each event (one log line per invocation) and reports the records whose body asks to
# fail when the mapping lets it.
HANDLER = '''
import json

def lambda_handler(event, context):
    print("ESM-EVENT " + json.dumps(event))
    # "fail-first" fails only on its first delivery; any other "fail" always.
    failed = [r["messageId"] for r in event["Records"] if "fail" in r["body"]
              and not ("fail-first" in r["body"] and r["attributes"]["ApproximateReceiveCount"] != "1")]
    if any("crash" in r["body"] for r in event["Records"]):
        raise RuntimeError("asked to crash")
    if any("malformed" in r["body"] for r in event["Records"]):
        return {"batchItemFailures": [{"foo": "notvalid"}]}
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}
'''


def function(lam, name):
    lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE,
                        Handler="lambda_function.lambda_handler",
                        Code={"ZipFile": make_zip({"lambda_function.py": HANDLER})})
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]


def queue(sqs, name, **attrs):
    url = sqs.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attrs.items()})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def events(logs, function_name):
    """Every event the function logged, oldest first."""
    group = "/aws/lambda/" + function_name
    try:
        got = logs.filter_log_events(logGroupName=group, filterPattern="ESM-EVENT")["events"]
    except ClientError:
        return []
    out = []
    for e in got:
        line = e["message"]
        out.append(json.loads(line[line.index("ESM-EVENT ") + len("ESM-EVENT "):]))
    return out


def bodies(evs):
    return sorted(r["body"] for e in evs for r in e["Records"])


def left_in(sqs, url):
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def wait_enabled(lam, uuid, state="Enabled"):
    return wait_for(lambda: lam.get_event_source_mapping(UUID=uuid)["State"] == state, timeout=15)


def test_a_mapping_delivers_batches_and_deletes_them(lam, sqs, logs):
    fn = unique("esm-fn")
    fn_arn = function(lam, fn)
    url, arn = queue(sqs, unique("esm-q"))
    created = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, BatchSize=10,
                                              MaximumBatchingWindowInSeconds=1)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202
    for k in ("ResponseMetadata", "LastModified"):
        created.pop(k)
    uuid = created["UUID"]
    assert created == {
        "BatchSize": 10,
        "EventSourceArn": arn,
        "EventSourceMappingArn": "arn:aws:lambda:us-east-1:000000000000:event-source-mapping:" + uuid,
        "FunctionArn": fn_arn,
        "FunctionResponseTypes": [],
        "MaximumBatchingWindowInSeconds": 1,
        "State": "Creating",
        "StateTransitionReason": "USER_INITIATED",
        "UUID": uuid,
    }
    assert wait_enabled(lam, uuid)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"foo": "bar"}),
                     MessageAttributes={"kind": {"DataType": "String", "StringValue": "k1"}})
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "m%d" % i} for i in range(4)])
    evs = wait_for(lambda: (lambda e: e if len(bodies(e)) >= 5 else None)(events(logs, fn)), timeout=30)
    assert evs, "no batch reached the function"
    assert bodies(evs) == sorted(['{"foo": "bar"}', "m0", "m1", "m2", "m3"])
    rec = next(r for e in evs for r in e["Records"] if r["body"] == '{"foo": "bar"}')
    assert set(rec) == {"messageId", "receiptHandle", "body", "attributes", "messageAttributes",
                        "md5OfMessageAttributes", "md5OfBody", "eventSource", "eventSourceARN", "awsRegion"}
    assert rec["eventSource"] == "aws:sqs" and rec["eventSourceARN"] == arn and rec["awsRegion"] == "us-east-1"
    assert rec["md5OfBody"] == hashlib.md5(rec["body"].encode()).hexdigest()
    assert rec["attributes"]["ApproximateReceiveCount"] == "1"
    assert set(rec["attributes"]) == {"ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                      "ApproximateFirstReceiveTimestamp"}
    assert rec["messageAttributes"] == {"kind": {"stringValue": "k1", "stringListValues": [],
                                                 "binaryListValues": [], "dataType": "String"}}
    assert rec["md5OfMessageAttributes"]
    plain = next(r for e in evs for r in e["Records"] if r["body"] == "m0")
    assert plain["messageAttributes"] == {} and plain["md5OfMessageAttributes"] is None
    assert wait_for(lambda: left_in(sqs, url) == 0, timeout=10), "handled messages were not deleted"

    # Disabled: nothing is taken; enabled again: the backlog is delivered.
    upd = lam.update_event_source_mapping(UUID=uuid, Enabled=False)
    assert upd["State"] == "Disabling" and upd["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert wait_enabled(lam, uuid, "Disabled")
    sqs.send_message(QueueUrl=url, MessageBody="while-disabled")
    time.sleep(3)
    assert "while-disabled" not in bodies(events(logs, fn))
    assert left_in(sqs, url) == 1
    assert lam.update_event_source_mapping(UUID=uuid, Enabled=True)["State"] == "Enabling"
    assert wait_for(lambda: "while-disabled" in bodies(events(logs, fn)), timeout=30)

    listed = lam.list_event_source_mappings(FunctionName=fn)["EventSourceMappings"]
    assert [m["UUID"] for m in listed] == [uuid]
    assert [m["UUID"] for m in lam.list_event_source_mappings(EventSourceArn=arn)["EventSourceMappings"]] == [uuid]
    gone = lam.delete_event_source_mapping(UUID=uuid)
    assert gone["State"] == "Deleting" and gone["ResponseMetadata"]["HTTPStatusCode"] == 202

    def deleted():
        try:
            lam.get_event_source_mapping(UUID=uuid)
            return False
        except ClientError as e:
            return e.response["Error"]["Code"] == "ResourceNotFoundException"
    assert wait_for(deleted, timeout=15)


def test_partial_batch_failures_keep_only_the_reported_items(lam, sqs, logs):
    fn = unique("esm-partial")
    function(lam, fn)
    dlq_url, dlq_arn = queue(sqs, unique("esm-dlq"))
    # The visibility timeout must outlast a batch (window, cold start, invocation), as on AWS.
    url, arn = queue(sqs, unique("esm-src"), VisibilityTimeout=3,
                     RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, BatchSize=10,
                                        FunctionResponseTypes=["ReportBatchItemFailures"])
    assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert wait_enabled(lam, m["UUID"])
    sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "ok-1"}, {"Id": "b", "MessageBody": "please-fail"},
        {"Id": "c", "MessageBody": "ok-2"}])
    # The reported item is received twice, then redriven; the others are handled once.
    dead = wait_for(lambda: sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages"),
                    timeout=40)
    assert dead and [d["Body"] for d in dead] == ["please-fail"]
    seen = bodies(events(logs, fn))
    assert seen.count("ok-1") == 1 and seen.count("ok-2") == 1, seen
    assert seen.count("please-fail") == 2, seen
    assert wait_for(lambda: left_in(sqs, url) == 0, timeout=10)
    lam.delete_event_source_mapping(UUID=m["UUID"])


def test_a_malformed_report_or_a_function_error_fails_the_whole_batch(lam, sqs, logs):
    fn = unique("esm-bad")
    function(lam, fn)
    dlq_url, dlq_arn = queue(sqs, unique("esm-bad-dlq"))
    url, arn = queue(sqs, unique("esm-bad-src"), VisibilityTimeout=3,
                     RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, BatchSize=1,
                                        FunctionResponseTypes=["ReportBatchItemFailures"])
    assert wait_enabled(lam, m["UUID"])
    sqs.send_message(QueueUrl=url, MessageBody="malformed")
    sqs.send_message(QueueUrl=url, MessageBody="crash")
    # The two may reach the dead-letter queue at different times: gather what arrives (a received
    # message stays invisible, so one receive need not show both).
    redriven = set()

    def both_redriven():
        got = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        redriven.update(m["Body"] for m in got.get("Messages", []))
        return redriven if redriven == {"malformed", "crash"} else None

    dead = wait_for(both_redriven, timeout=40)
    # Both were retried (received twice) before they were redriven.
    seen = bodies(events(logs, fn))
    assert seen.count("malformed") == 2 and seen.count("crash") == 2, seen
    assert dead is not None
    lam.delete_event_source_mapping(UUID=m["UUID"])


def error(call):
    with pytest.raises(ClientError) as e:
        call()
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def test_mapping_errors_are_aws_shaped(lam, sqs):
    fn = unique("esm-err")
    function(lam, fn)
    _url, arn = queue(sqs, unique("esm-err-q"))
    missing_q = arn + "-missing"
    assert error(lambda: lam.create_event_source_mapping(EventSourceArn=missing_q, FunctionName=fn)) == (
        400, "InvalidParameterValueException",
        "Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. "
        "SQS Error Message: The specified queue does not exist.")
    status, code, _ = error(lambda: lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn + "-nope"))
    assert (status, code) == (404, "ResourceNotFoundException")
    status, code, msg = error(lambda: lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn,
                                                                      BatchSize=20))
    assert (status, code) == (400, "InvalidParameterValueException")
    assert msg == "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
    # AWS's invalid patterns (test_sqs_invalid_event_filter).
    for bad in [None, "simple string", {"eventSource": "aws:sqs"}, {"eventSource": []}]:
        assert error(lambda: lam.create_event_source_mapping(
            EventSourceArn=arn, FunctionName=fn, FilterCriteria={"Filters": [{"Pattern": json.dumps(bad)}]})) == (
            400, "InvalidParameterValueException", "Invalid filter pattern definition.")
    status, code, msg = error(lambda: lam.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=fn, StartingPosition="LATEST"))
    assert (status, code) == (400, "InvalidParameterValueException") and "StartingPosition" in msg
    first = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, Tags={"team": "a"})
    assert first["BatchSize"] == 10 and first["MaximumBatchingWindowInSeconds"] == 0
    # Tags on the mapping's ARN.
    esm_arn = first["EventSourceMappingArn"]
    assert lam.list_tags(Resource=esm_arn)["Tags"] == {"team": "a"}
    lam.tag_resource(Resource=esm_arn, Tags={"env": "dev"})
    lam.untag_resource(Resource=esm_arn, TagKeys=["team"])
    assert lam.list_tags(Resource=esm_arn)["Tags"] == {"env": "dev"}
    assert error(lambda: lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn)) == (
        409, "ResourceConflictException",
        'An event source mapping with SQS arn (" %s ") and function (" %s ") already exists. '
        "Please update or delete the existing mapping with UUID %s" % (arn, fn, first["UUID"]))
    assert error(lambda: lam.get_event_source_mapping(UUID="00000000-0000-0000-0000-000000000000")) == (
        404, "ResourceNotFoundException", "The resource you requested does not exist.")
    upd = lam.update_event_source_mapping(UUID=first["UUID"], BatchSize=5)
    assert upd["State"] == "Updating" and upd["BatchSize"] == 5
    assert wait_enabled(lam, first["UUID"])
    lam.delete_event_source_mapping(UUID=first["UUID"])
    # FIFO queues: at most 10 a batch and no batching window (Lambda's SQS parameters), at
    # creation and at update.
    _furl, farn = fifo_queue(sqs, unique("esm-err-fifo"))
    for kwargs, want in [
        ({"BatchSize": 20, "MaximumBatchingWindowInSeconds": 5}, "Batching window is not supported for FIFO queues"),
        ({"MaximumBatchingWindowInSeconds": 1}, "Batching window is not supported for FIFO queues"),
    ]:
        assert error(lambda: lam.create_event_source_mapping(EventSourceArn=farn, FunctionName=fn, **kwargs)) == (
            400, "InvalidParameterValueException", want)
    fifo = lam.create_event_source_mapping(EventSourceArn=farn, FunctionName=fn, BatchSize=10)
    status, code, msg = error(lambda: lam.update_event_source_mapping(UUID=fifo["UUID"], BatchSize=11))
    assert (status, code) == (400, "InvalidParameterValueException") and msg
    lam.delete_event_source_mapping(UUID=fifo["UUID"])


def test_filter_criteria_deliver_matching_records_and_delete_the_rest(lam, sqs, logs):
    fn = unique("esm-filter")
    function(lam, fn)
    url, arn = queue(sqs, unique("esm-filter-q"))
    pattern = json.dumps({"body": {"my-number": [{"numeric": [">=", 100, "<", 200]}]}})
    for body in [json.dumps({"my-number": 100}), json.dumps({"my-number": 200}), "plain-string"]:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, MaximumBatchingWindowInSeconds=1,
                                        FilterCriteria={"Filters": [{"Pattern": pattern}]})
    assert m["FilterCriteria"] == {"Filters": [{"Pattern": pattern}]}
    assert wait_enabled(lam, m["UUID"])
    # The records that do not match are deleted without being delivered, as Lambda does.
    assert wait_for(lambda: left_in(sqs, url) == 0, timeout=30)
    assert wait_for(lambda: bodies(events(logs, fn)) == ['{"my-number": 100}'], timeout=10), events(logs, fn)
    # Clearing the filters delivers everything.
    lam.update_event_source_mapping(UUID=m["UUID"], FilterCriteria={})
    assert wait_enabled(lam, m["UUID"])
    assert "FilterCriteria" not in lam.get_event_source_mapping(UUID=m["UUID"])
    sqs.send_message(QueueUrl=url, MessageBody="now-anything")
    assert wait_for(lambda: "now-anything" in bodies(events(logs, fn)), timeout=30)
    lam.delete_event_source_mapping(UUID=m["UUID"])


# Posts each batch it gets ([group, sequence number, body] per record) to the test's recorder on
# the host port functions may reach, before answering: the recorder sees batches in the order
# the function handled them.
FIFO_RECORDER = """
import json, urllib.request

def lambda_handler(event, context):
    recs = [[r["attributes"]["MessageGroupId"], r["attributes"]["SequenceNumber"], r["body"]]
            for r in event["Records"]]
    req = urllib.request.Request("http://127.0.0.1:%d/", data=json.dumps(recs).encode(), method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    return {}
"""


def recorder(port):
    batches = []
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                batches.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, batches, lock


def fifo_queue(sqs, name, **attrs):
    attrs = dict({"FifoQueue": "true"}, **{k: str(v) for k, v in attrs.items()})
    url = sqs.create_queue(QueueName=name + ".fifo", Attributes=attrs)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def test_fifo_groups_arrive_in_order_under_concurrent_producers(lam, sqs, host_port):
    srv, batches, lock = recorder(host_port)
    try:
        fn = unique("esm-fifo")
        lam.create_function(FunctionName=fn, Runtime="python3.11", Role=ROLE,
                            Handler="lambda_function.lambda_handler", Timeout=30,
                            Code={"ZipFile": make_zip({"lambda_function.py": FIFO_RECORDER % host_port})})
        lam.get_waiter("function_active_v2").wait(FunctionName=fn, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        url, arn = fifo_queue(sqs, unique("esm-fifo-q"), VisibilityTimeout=30)
        m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, BatchSize=5)
        assert wait_enabled(lam, m["UUID"])

        groups = ["g%d" % i for i in range(5)]
        sent = {g: [] for g in groups}  # group -> [(sequence number, body)]
        sent_lock = threading.Lock()

        def producer(t):
            for i in range(20):
                g = groups[(t + i) % len(groups)]
                body = "t%d-%d" % (t, i)
                r = sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=g,
                                     MessageDeduplicationId=body)
                with sent_lock:
                    sent[g].append((r["SequenceNumber"], body))

        threads = [threading.Thread(target=producer, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = sum(len(v) for v in sent.values())
        assert total == 80

        def seen():
            with lock:
                return [rec for b in batches for rec in b]
        assert wait_for(lambda: len({r[2] for r in seen()}) >= total, timeout=90), (len(seen()), total)
        assert wait_for(lambda: left_in(sqs, url) == 0, timeout=15)
        got = seen()
        for g in groups:
            order = [(seq, body) for grp, seq, body in got if grp == g]
            # Each group exactly in the order its messages were sent (their sequence numbers),
            # none lost, none repeated.
            assert order == sorted(sent[g]), (g, order, sorted(sent[g]))
        # A batch never mixes up a group's order, and every record carries FIFO attributes.
        assert all(len(r[1]) == 20 for r in got)
        lam.delete_event_source_mapping(UUID=m["UUID"])
    finally:
        srv.shutdown()


def test_fifo_partial_batch_failure_keeps_the_rest_of_the_group(lam, sqs, logs):
    fn = unique("esm-fifo-partial")
    function(lam, fn)
    url, arn = fifo_queue(sqs, unique("esm-fifo-src"), VisibilityTimeout=3, ContentBasedDeduplication="true")
    # Sent before the mapping exists, so the first batch holds them all.
    sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "ok-1", "MessageGroupId": "g"},
        {"Id": "b", "MessageBody": "fail-first", "MessageGroupId": "g"},
        {"Id": "c", "MessageBody": "ok-2", "MessageGroupId": "g"},
        {"Id": "d", "MessageBody": "other-group", "MessageGroupId": "h"}])
    m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, BatchSize=10,
                                        FunctionResponseTypes=["ReportBatchItemFailures"])
    assert wait_enabled(lam, m["UUID"])
    assert wait_for(lambda: left_in(sqs, url) == 0, timeout=40)
    evs = events(logs, fn)
    first = [r["body"] for r in evs[0]["Records"]]
    assert first == ["ok-1", "fail-first", "ok-2", "other-group"], first
    assert set(evs[0]["Records"][0]["attributes"]) == {
        "ApproximateReceiveCount", "SentTimestamp", "SequenceNumber", "MessageGroupId", "SenderId",
        "MessageDeduplicationId", "ApproximateFirstReceiveTimestamp"}
    # The reported item and the later one of its group (not reported) come back together, in
    # order; the earlier one and the other group were handled once.
    seen = bodies(evs)
    assert seen.count("ok-1") == 1 and seen.count("other-group") == 1, seen
    assert seen.count("fail-first") == 2 and seen.count("ok-2") == 2, seen
    retry = [r["body"] for e in evs[1:] for r in e["Records"]]
    assert retry == ["fail-first", "ok-2"], retry
    lam.delete_event_source_mapping(UUID=m["UUID"])
