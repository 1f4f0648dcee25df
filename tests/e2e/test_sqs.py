"""The built-in queue service through boto3 (SQS JSON protocol) and through signed form
requests (SQS query protocol, XML answers): standard and FIFO queues, tags, policies."""

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import unique


def test_queue_lifecycle_and_messages(sqs):
    name = unique("q")
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    assert url.endswith("/000000000000/" + name)
    assert sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1"})["QueueUrl"] == url
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    assert url in sqs.list_queues(QueueNamePrefix=name)["QueueUrls"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["QueueArn"] == "arn:aws:sqs:us-east-1:000000000000:" + name
    assert attrs["VisibilityTimeout"] == "1"

    sent = sqs.send_message(QueueUrl=url, MessageBody="hello",
                            MessageAttributes={"kind": {"DataType": "String", "StringValue": "greeting"}})
    assert sent["MD5OfMessageBody"] == hashlib.md5(b"hello").hexdigest()
    assert "MD5OfMessageAttributes" in sent
    batch = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "one"}, {"Id": "b", "MessageBody": "two"}])
    assert sorted(e["Id"] for e in batch["Successful"]) == ["a", "b"]

    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                              MessageSystemAttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert sorted(m["Body"] for m in got) == ["hello", "one", "two"]
    hello = next(m for m in got if m["Body"] == "hello")
    assert hello["MessageAttributes"]["kind"]["StringValue"] == "greeting"
    assert hello["Attributes"]["ApproximateReceiveCount"] == "1"
    # In flight: nothing visible; after the visibility timeout, they return.
    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=3)["Messages"]
    assert len(again) >= 1
    sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                    for i, m in enumerate(again)])
    with pytest.raises(ClientError) as e:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="bogus")
    assert e.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"
    sqs.purge_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(ClientError) as e:
        sqs.get_queue_url(QueueName=name)
    assert e.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=url, MessageBody="x")


def test_redrive_to_a_dead_letter_queue(sqs):
    dlq = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    src = sqs.create_queue(QueueName=unique("src"), Attributes={
        "VisibilityTimeout": "0",
        "RedrivePolicy": '{"deadLetterTargetArn": "%s", "maxReceiveCount": "2"}' % dlq_arn})["QueueUrl"]
    sqs.send_message(QueueUrl=src, MessageBody="poison")
    for _ in range(2):
        assert sqs.receive_message(QueueUrl=src)["Messages"][0]["Body"] == "poison"
    assert "Messages" not in sqs.receive_message(QueueUrl=src)
    assert sqs.receive_message(QueueUrl=dlq)["Messages"][0]["Body"] == "poison"


def error(call):
    with pytest.raises(ClientError) as e:
        call()
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def test_fifo_queues_dedup_groups_and_sequence_numbers(sqs):
    name = unique("orders") + ".fifo"
    url = sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["FifoQueue"] == "true" and attrs["ContentBasedDeduplication"] == "false"
    assert attrs["DeduplicationScope"] == "queue" and attrs["FifoThroughputLimit"] == "perQueue"

    first = sqs.send_message(QueueUrl=url, MessageBody="a1", MessageGroupId="a", MessageDeduplicationId="1")
    assert len(first["SequenceNumber"]) == 20
    dup = sqs.send_message(QueueUrl=url, MessageBody="other body", MessageGroupId="a", MessageDeduplicationId="1")
    assert dup["MessageId"] == first["MessageId"] and dup["SequenceNumber"] == first["SequenceNumber"]
    batch = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "x", "MessageBody": "a2", "MessageGroupId": "a", "MessageDeduplicationId": "2"},
        {"Id": "y", "MessageBody": "b1", "MessageGroupId": "b", "MessageDeduplicationId": "3"},
        {"Id": "z", "MessageBody": "a3", "MessageGroupId": "a", "MessageDeduplicationId": "4"}])
    seqs = [first["SequenceNumber"]] + [e["SequenceNumber"] for e in batch["Successful"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4

    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, MessageSystemAttributeNames=["All"])["Messages"]
    assert got[0]["Body"] == "a1"
    a = got[0]["Attributes"]
    assert (a["MessageGroupId"], a["MessageDeduplicationId"], a["SequenceNumber"]) == ("a", "1", first["SequenceNumber"])
    # Group a is locked while a1 is in flight: only b comes out.
    more = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in more] == ["b1"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
    rest = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in rest] == ["a2", "a3"]
    # ChangeMessageVisibilityBatch puts them back, in order.
    changed = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for i, m in enumerate(rest)]
        + [{"Id": "stale", "ReceiptHandle": "nope", "VisibilityTimeout": 0}])
    assert sorted(e["Id"] for e in changed["Successful"]) == ["0", "1"]
    assert [(f["Id"], f["Code"]) for f in changed["Failed"]] == [("stale", "ReceiptHandleIsInvalid")]
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in again] == ["a2", "a3"]

    # Content-based deduplication: SHA-256 of the body.
    cbd = sqs.create_queue(QueueName=unique("cbd") + ".fifo",
                           Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    one = sqs.send_message(QueueUrl=cbd, MessageBody="same", MessageGroupId="g")
    two = sqs.send_message(QueueUrl=cbd, MessageBody="same", MessageGroupId="g")
    assert one["MessageId"] == two["MessageId"]
    got = sqs.receive_message(QueueUrl=cbd, MaxNumberOfMessages=10, MessageSystemAttributeNames=["MessageDeduplicationId"])
    assert len(got["Messages"]) == 1
    assert got["Messages"][0]["Attributes"]["MessageDeduplicationId"] == hashlib.sha256(b"same").hexdigest()


def test_fifo_errors_are_aws_shaped(sqs):
    base = unique("fe")
    assert error(lambda: sqs.create_queue(QueueName=base + ".fifo")) == (
        400, "InvalidParameterValue", "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
    assert error(lambda: sqs.create_queue(QueueName=base, Attributes={"FifoQueue": "true"})) == (
        400, "InvalidParameterValue",
        "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, "
        "must end with .fifo suffix and be 1 to 80 in length.")
    status, code, _ = error(lambda: sqs.create_queue(QueueName=base, Attributes={"ContentBasedDeduplication": "true"}))
    assert (status, code) == (400, "InvalidAttributeName")
    status, code, _ = error(lambda: sqs.create_queue(QueueName=base + ".fifo", Attributes={
        "FifoQueue": "true", "FifoThroughputLimit": "perMessageGroupId", "DeduplicationScope": "queue"}))
    assert (status, code) == (400, "InvalidAttributeValue")
    url = sqs.create_queue(QueueName=base + ".fifo", Attributes={
        "FifoQueue": "true", "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"})["QueueUrl"]
    assert error(lambda: sqs.send_message(QueueUrl=url, MessageBody="x", MessageDeduplicationId="d")) == (
        400, "MissingParameter", "The request must contain the parameter MessageGroupId.")
    assert error(lambda: sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")) == (
        400, "InvalidParameterValue",
        "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly")
    status, code, msg = error(lambda: sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g",
                                                       MessageDeduplicationId="d", DelaySeconds=5))
    assert (status, code) == (400, "InvalidParameterValue") and "DelaySeconds" in msg
    status, code, _ = error(lambda: sqs.set_queue_attributes(QueueUrl=url, Attributes={"FifoQueue": "false"}))
    assert (status, code) == (400, "InvalidAttributeValue")
    # A FIFO queue's dead-letter queue must be FIFO.
    std = sqs.create_queue(QueueName=base + "-std")["QueueUrl"]
    std_arn = sqs.get_queue_attributes(QueueUrl=std, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    status, code, msg = error(lambda: sqs.set_queue_attributes(QueueUrl=url, Attributes={
        "RedrivePolicy": '{"deadLetterTargetArn": "%s", "maxReceiveCount": 2}' % std_arn}))
    assert (status, code) == (400, "InvalidParameterValue") and "same type" in msg
    # Standard queues: a group id is accepted (fair queues), a deduplication id is not.
    sqs.send_message(QueueUrl=std, MessageBody="tenant", MessageGroupId="t1")
    status, code, _ = error(lambda: sqs.send_message(QueueUrl=std, MessageBody="x", MessageDeduplicationId="d"))
    assert (status, code) == (400, "InvalidParameterValue")
    got = sqs.receive_message(QueueUrl=std, MessageSystemAttributeNames=["MessageGroupId"])["Messages"][0]
    assert got["Attributes"] == {"MessageGroupId": "t1"}


def test_tags_policies_and_dead_letter_sources(sqs):
    name = unique("tagged")
    url = sqs.create_queue(QueueName=name, tags={"team": "a", "env": "dev"})["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "a", "env": "dev"}
    sqs.tag_queue(QueueUrl=url, Tags={"env": "prod", "cost": "42"})
    sqs.untag_queue(QueueUrl=url, TagKeys=["team", "absent"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "prod", "cost": "42"}
    status, code, _ = error(lambda: sqs.tag_queue(QueueUrl=url, Tags={"k%d" % i: "v" for i in range(49)}))
    assert (status, code) == (400, "InvalidParameterValue")
    sqs.untag_queue(QueueUrl=url, TagKeys=["env", "cost"])
    assert "Tags" not in sqs.list_queue_tags(QueueUrl=url)

    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "s1", "Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": arn}]})
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    assert json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"]) == json.loads(policy)
    status, code, _ = error(lambda: sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": "not json"}))
    assert (status, code) == (400, "InvalidAttributeValue")
    sqs.add_permission(QueueUrl=url, Label="l2", AWSAccountIds=["111122223333"], Actions=["ReceiveMessage"])
    doc = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])
    assert [s["Sid"] for s in doc["Statement"]] == ["s1", "l2"]
    assert doc["Statement"][1]["Action"] == "SQS:ReceiveMessage"
    assert doc["Statement"][1]["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    status, code, _ = error(lambda: sqs.add_permission(QueueUrl=url, Label="l2", AWSAccountIds=["1"], Actions=["SendMessage"]))
    assert (status, code) == (400, "InvalidParameterValue")
    sqs.remove_permission(QueueUrl=url, Label="l2")
    status, code, _ = error(lambda: sqs.remove_permission(QueueUrl=url, Label="l2"))
    assert (status, code) == (400, "InvalidParameterValue")

    src = sqs.create_queue(QueueName=unique("src"), Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3})})["QueueUrl"]
    assert sqs.list_dead_letter_source_queues(QueueUrl=url)["queueUrls"] == [src]
    status, code, msg = error(lambda: sqs.list_message_move_tasks(SourceArn=arn))
    assert (status, code) == (400, "AWS.SimpleQueueService.UnsupportedOperation") and "ListMessageMoveTasks" in msg


# ---- the query protocol (form in, XML out), signed with SigV4 as older SDKs send it ----------

NS = "{http://queue.amazonaws.com/doc/2012-11-05/}"


def query(server, params, path="/"):
    """One signed query-protocol request; (status, root element with namespaces removed)."""
    body = urllib.parse.urlencode(dict(params, Version="2012-11-05"))
    req = AWSRequest(method="POST", url=server + path, data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials("test", "test"), "sqs", "us-east-1").add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=body.encode(), headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    root = ET.fromstring(text)
    for el in root.iter():
        el.tag = el.tag.replace(NS, "")
    return status, root


def test_the_query_protocol_serves_every_operation(server, sqs):
    name = unique("xml")
    st, r = query(server, {"Action": "CreateQueue", "QueueName": name,
                           "Attribute.1.Name": "VisibilityTimeout", "Attribute.1.Value": "0",
                           "Tag.1.Key": "team", "Tag.1.Value": "a"})
    assert st == 200 and r.tag == "CreateQueueResponse", ET.tostring(r)
    url = r.findtext("CreateQueueResult/QueueUrl")
    assert r.findtext("ResponseMetadata/RequestId")
    # The same queue through the JSON protocol.
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    st, r = query(server, {"Action": "GetQueueUrl", "QueueName": name})
    assert r.findtext("GetQueueUrlResult/QueueUrl") == url
    st, r = query(server, {"Action": "ListQueues", "QueueNamePrefix": name})
    assert [e.text for e in r.findall("ListQueuesResult/QueueUrl")] == [url]
    st, r = query(server, {"Action": "SetQueueAttributes", "QueueUrl": url,
                           "Attribute.1.Name": "DelaySeconds", "Attribute.1.Value": "0"})
    assert st == 200 and r.find("SetQueueAttributesResult") is None
    st, r = query(server, {"Action": "GetQueueAttributes", "QueueUrl": url, "AttributeName.1": "All"})
    attrs = {a.findtext("Name"): a.findtext("Value") for a in r.findall("GetQueueAttributesResult/Attribute")}
    assert attrs["VisibilityTimeout"] == "0" and attrs["QueueArn"].endswith(":" + name)
    st, r = query(server, {"Action": "TagQueue", "QueueUrl": url, "Tag.1.Key": "env", "Tag.1.Value": "dev"})
    assert st == 200
    st, r = query(server, {"Action": "UntagQueue", "QueueUrl": url, "TagKey.1": "team"})
    assert st == 200
    st, r = query(server, {"Action": "ListQueueTags", "QueueUrl": url})
    assert {t.findtext("Key"): t.findtext("Value") for t in r.findall("ListQueueTagsResult/Tag")} == {"env": "dev"}

    # Queue-URL style: POST /<account>/<queue>.
    path = urllib.parse.urlparse(url).path
    st, r = query(server, {"Action": "SendMessage", "MessageBody": "<hello & bye>",
                           "MessageAttribute.1.Name": "kind", "MessageAttribute.1.Value.DataType": "String",
                           "MessageAttribute.1.Value.StringValue": "greeting"}, path)
    assert st == 200, ET.tostring(r)
    assert r.findtext("SendMessageResult/MD5OfMessageBody") == hashlib.md5(b"<hello & bye>").hexdigest()
    assert r.findtext("SendMessageResult/MD5OfMessageAttributes")
    st, r = query(server, {"Action": "SendMessageBatch", "QueueUrl": url,
                           "SendMessageBatchRequestEntry.1.Id": "a", "SendMessageBatchRequestEntry.1.MessageBody": "one",
                           "SendMessageBatchRequestEntry.2.Id": "b", "SendMessageBatchRequestEntry.2.MessageBody": "two"})
    assert sorted(e.findtext("Id") for e in r.findall("SendMessageBatchResult/SendMessageBatchResultEntry")) == ["a", "b"]
    st, r = query(server, {"Action": "ReceiveMessage", "QueueUrl": url, "MaxNumberOfMessages": "10",
                           "AttributeName.1": "All", "MessageAttributeName.1": "All"})
    msgs = r.findall("ReceiveMessageResult/Message")
    assert sorted(m.findtext("Body") for m in msgs) == ["<hello & bye>", "one", "two"]
    hello = next(m for m in msgs if m.findtext("Body") == "<hello & bye>")
    assert hello.findtext("MessageAttribute/Name") == "kind"
    assert hello.findtext("MessageAttribute/Value/StringValue") == "greeting"
    assert {a.findtext("Name") for a in hello.findall("Attribute")} >= {"SenderId", "SentTimestamp", "ApproximateReceiveCount"}
    handles = [m.findtext("ReceiptHandle") for m in msgs]
    st, r = query(server, {"Action": "ChangeMessageVisibility", "QueueUrl": url, "ReceiptHandle": handles[0],
                           "VisibilityTimeout": "30"})
    assert st == 200
    st, r = query(server, {"Action": "ChangeMessageVisibilityBatch", "QueueUrl": url,
                           "ChangeMessageVisibilityBatchRequestEntry.1.Id": "c",
                           "ChangeMessageVisibilityBatchRequestEntry.1.ReceiptHandle": handles[1],
                           "ChangeMessageVisibilityBatchRequestEntry.1.VisibilityTimeout": "30"})
    assert r.findtext("ChangeMessageVisibilityBatchResult/ChangeMessageVisibilityBatchResultEntry/Id") == "c"
    st, r = query(server, {"Action": "DeleteMessage", "QueueUrl": url, "ReceiptHandle": handles[0]})
    assert st == 200 and r.tag == "DeleteMessageResponse"
    st, r = query(server, {"Action": "DeleteMessageBatch", "QueueUrl": url,
                           "DeleteMessageBatchRequestEntry.1.Id": "x", "DeleteMessageBatchRequestEntry.1.ReceiptHandle": handles[1],
                           "DeleteMessageBatchRequestEntry.2.Id": "y", "DeleteMessageBatchRequestEntry.2.ReceiptHandle": "stale"})
    assert [e.findtext("Id") for e in r.findall("DeleteMessageBatchResult/DeleteMessageBatchResultEntry")] == ["x"]
    failed = r.find("DeleteMessageBatchResult/BatchResultErrorEntry")
    assert (failed.findtext("Id"), failed.findtext("Code"), failed.findtext("SenderFault")) == ("y", "ReceiptHandleIsInvalid", "true")

    arn = attrs["QueueArn"]
    st, r = query(server, {"Action": "AddPermission", "QueueUrl": url, "Label": "p1",
                           "AWSAccountId.1": "111122223333", "ActionName.1": "SendMessage"})
    assert st == 200
    st, r = query(server, {"Action": "RemovePermission", "QueueUrl": url, "Label": "p1"})
    assert st == 200
    src = sqs.create_queue(QueueName=unique("xml-src"), Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3})})["QueueUrl"]
    st, r = query(server, {"Action": "ListDeadLetterSourceQueues", "QueueUrl": url})
    assert [e.text for e in r.findall("ListDeadLetterSourceQueuesResult/QueueUrl")] == [src]
    st, r = query(server, {"Action": "PurgeQueue", "QueueUrl": url})
    assert st == 200
    st, r = query(server, {"Action": "DeleteQueue", "QueueUrl": url})
    assert st == 200

    # Errors: SQS's XML error document with the query error codes.
    st, r = query(server, {"Action": "GetQueueUrl", "QueueName": name})
    assert st == 400 and r.tag == "ErrorResponse"
    assert (r.findtext("Error/Type"), r.findtext("Error/Code"), r.findtext("Error/Message")) == (
        "Sender", "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.")
    assert r.find("Error/Detail") is not None and r.findtext("RequestId")
    st, r = query(server, {"Action": "SendMessageBatch", "QueueUrl": src})
    assert (st, r.findtext("Error/Code")) == (400, "AWS.SimpleQueueService.EmptyBatchRequest")
    st, r = query(server, {"Action": "SendMessage", "QueueUrl": src})
    assert (st, r.findtext("Error/Code")) == (400, "MissingParameter")
    st, r = query(server, {"Action": "SendMessage", "QueueUrl": src, "MessageBody": "x", "Bogus": "1"})
    assert (st, r.findtext("Error/Code")) == (400, "InvalidParameterValue")
    st, r = query(server, {"Action": "CancelMessageMoveTask", "TaskHandle": "t"})
    assert (st, r.findtext("Error/Code")) == (400, "AWS.SimpleQueueService.UnsupportedOperation")
    st, r = query(server, {"Action": "NoSuchAction"})
    assert (st, r.findtext("Error/Code")) == (400, "InvalidAction")


def attributes_md5(attrs):
    """SQS's digest of message attributes (sorted by name; each name, data type, transport
    type and value length-prefixed), as the SDKs that check it compute it."""
    buf = b""
    for name in sorted(attrs):
        a = attrs[name]
        for part in (name, a["DataType"]):
            raw = part.encode()
            buf += len(raw).to_bytes(4, "big") + raw
        if "StringValue" in a:
            raw = a["StringValue"].encode()
            buf += b"\x01" + len(raw).to_bytes(4, "big") + raw
        else:
            raw = a["BinaryValue"]
            buf += b"\x02" + len(raw).to_bytes(4, "big") + raw
    return hashlib.md5(buf).hexdigest()


def test_received_attribute_digests_cover_what_was_returned(sqs):
    url = sqs.create_queue(QueueName=unique("md5"))["QueueUrl"]
    attrs = {"colour": {"DataType": "String", "StringValue": "blue"},
             "size": {"DataType": "Number", "StringValue": "3"}}
    sent = sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=attrs)
    assert sent["MD5OfMessageAttributes"] == attributes_md5(attrs)
    # Asked for one attribute: the digest is of that one (SDKs verify it against what came).
    one = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["size"], VisibilityTimeout=0)["Messages"][0]
    assert set(one["MessageAttributes"]) == {"size"}
    assert one["MD5OfMessageAttributes"] == attributes_md5({"size": attrs["size"]})
    # Asked for none: neither attributes nor their digest.
    none = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]
    assert "MessageAttributes" not in none and "MD5OfMessageAttributes" not in none
