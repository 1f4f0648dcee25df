"""The built-in queue service through boto3 (SQS JSON protocol)."""

import hashlib

import pytest
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
