"""Function URLs through boto3's lambda client, and the payload formats of HTTP APIs made with
boto3's apigatewayv2 client: cookies, multi-value headers and query, binary bodies base64 in and
out, response inference, errors, CORS, and stage throttling."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, make_zip, raw_request as send, unique

HANDLER = '''
import base64, json

def handler(event, context):
    path = event.get("rawPath") or event.get("path")
    if path.endswith("/fail"):
        raise RuntimeError("boom")
    if path.endswith("/plain"):
        return {"plain": True}
    if path.endswith("/binary"):
        data = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
        return {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"},
                "body": base64.b64encode(data[::-1]).decode(), "isBase64Encoded": True}
    if event.get("version") == "1.0":
        return {"statusCode": 200, "multiValueHeaders": {"X-Multi": ["1", "2"]},
                "body": json.dumps({"mvh": event["multiValueHeaders"].get("x-rep"),
                                    "mvq": event["multiValueQueryStringParameters"]})}
    return {"statusCode": 202, "cookies": ["s=1; Path=/", "t=2"], "headers": {"X-Seen": "yes"},
            "body": json.dumps({"cookies": event.get("cookies"), "query": event.get("queryStringParameters"),
                                "rep": event["headers"].get("x-rep"), "body": event.get("body"),
                                "b64": event["isBase64Encoded"]})}
'''


@pytest.fixture(scope="module")
def fn(lam):
    name = unique("payloads")
    f = lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                            Code={"ZipFile": make_zip({"app.py": HANDLER})})
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    yield f
    lam.delete_function(FunctionName=name)


def test_function_url_lifecycle_and_requests(lam, fn):
    name = fn["FunctionName"]
    cfg = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    url = cfg["FunctionUrl"]
    assert cfg["AuthType"] == "NONE"
    with pytest.raises(ClientError) as e:
        lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert e.value.response["Error"]["Code"] == "ResourceConflictException"
    assert lam.get_function_url_config(FunctionName=name)["FunctionUrl"] == url
    assert [c["FunctionUrl"] for c in lam.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]] == [url]
    updated = lam.update_function_url_config(FunctionName=name, Cors={
        "AllowOrigins": ["https://example.com"], "AllowMethods": ["GET", "POST"], "ExposeHeaders": ["x-seen"],
        "MaxAge": 300})
    assert updated["Cors"]["AllowOrigins"] == ["https://example.com"]
    with pytest.raises(ClientError) as e:
        lam.update_function_url_config(FunctionName=name, Cors={"MaxAge": 100000})
    assert e.value.response["Error"]["Code"] == "ValidationException"

    # CORS: preflights are answered by the platform; responses carry the configured headers.
    status, headers, _ = send(url, "OPTIONS", "/x", headers=[("Origin", "https://example.com"),
                                                              ("Access-Control-Request-Method", "POST")])
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://example.com"
    assert headers["Access-Control-Allow-Methods"] == "GET,POST" and headers["Access-Control-Max-Age"] == "300"
    status, headers, _ = send(url, "OPTIONS", "/x", headers=[("Origin", "https://evil.example"),
                                                              ("Access-Control-Request-Method", "POST")])
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    status, headers, _ = send(url, "GET", "/plain", headers=[("Origin", "https://example.com")])
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://example.com"
    assert headers["Access-Control-Expose-Headers"] == "x-seen"

    # Payload 2.0: cookies and query in, cookies and headers out; repeated headers joined by commas.
    status, headers, body = send(url, "POST", "/x?a=1&a=2&b=3", body=b"hello",
                                 headers=[("Cookie", "c1=v1; c2=v2"), ("X-Rep", "1"), ("X-Rep", "2"),
                                          ("Content-Type", "text/plain")])
    assert status == 202, body
    assert headers.get_all("Set-Cookie") == ["s=1; Path=/", "t=2"] and headers["X-Seen"] == "yes"
    out = json.loads(body)
    assert out["cookies"] == ["c1=v1", "c2=v2"]
    assert out["query"] == {"a": "1,2", "b": "3"}
    assert out["rep"] == "1,2"
    assert (out["body"], out["b64"]) == ("hello", False)
    # Binary in and out.
    blob = bytes(range(250, 256)) + b"\x00\x01"
    status, headers, body = send(url, "POST", "/binary", body=blob, headers=[("Content-Type", "application/octet-stream")])
    assert (status, body) == (200, blob[::-1])
    # A plain JSON value is inferred as a 200 application/json answer; an error is a 502.
    status, headers, body = send(url, "GET", "/plain")
    assert (status, headers["Content-Type"], json.loads(body)) == (200, "application/json", {"plain": True})
    status, _, body = send(url, "GET", "/fail")
    assert status == 502, body

    lam.delete_function_url_config(FunctionName=name)
    with pytest.raises(ClientError) as e:
        lam.get_function_url_config(FunctionName=name)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    status, _, _ = send(url, "GET", "/plain")
    assert status == 404


def test_http_api_payload_formats_and_throttling(apigw, fn):
    arn = fn["FunctionArn"]
    api = apigw.create_api(Name=unique("payloads"), ProtocolType="HTTP")
    api_id = api["ApiId"]
    v1 = apigw.create_integration(ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=arn,
                                  PayloadFormatVersion="1.0")
    v2 = apigw.create_integration(ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=arn,
                                  PayloadFormatVersion="2.0")
    apigw.create_route(ApiId=api_id, RouteKey="GET /v1/{proxy+}", Target="integrations/" + v1["IntegrationId"])
    apigw.create_route(ApiId=api_id, RouteKey="ANY /v2/{proxy+}", Target="integrations/" + v2["IntegrationId"])
    apigw.create_route(ApiId=api_id, RouteKey="GET /v2/special", Target="integrations/" + v1["IntegrationId"])
    # The function named by a stage variable, as teams map stages to aliases.
    staged = apigw.create_integration(ApiId=api_id, IntegrationType="AWS_PROXY", PayloadFormatVersion="2.0",
                                      IntegrationUri=arn.rsplit(":", 1)[0] + ":${stageVariables.fn}")
    apigw.create_route(ApiId=api_id, RouteKey="GET /staged/{proxy+}", Target="integrations/" + staged["IntegrationId"])
    assert len(apigw.get_routes(ApiId=api_id)["Items"]) == 4
    assert len(apigw.get_integrations(ApiId=api_id)["Items"]) == 3
    apigw.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True,
                       StageVariables={"fn": fn["FunctionName"]})
    status, _, body = send(url := api["ApiEndpoint"], "GET", "/staged/plain")
    assert (status, json.loads(body)) == (200, {"plain": True})

    # Payload 1.0: multi-value headers and query in, multi-value headers out.
    status, headers, body = send(url, "GET", "/v1/a/b?k=1&k=2", headers=[("X-Rep", "1"), ("X-Rep", "2")])
    assert status == 200, body
    assert headers.get_all("X-Multi") == ["1", "2"]
    assert json.loads(body) == {"mvh": ["1", "2"], "mvq": {"k": ["1", "2"]}}
    # The literal route wins over the greedy one; it uses payload 1.0.
    status, headers, body = send(url, "GET", "/v2/special")
    assert status == 200 and headers.get_all("X-Multi") == ["1", "2"]
    # Payload 2.0: cookies out, binary in and out, inference, a method with no route → 404.
    status, headers, body = send(url, "PUT", "/v2/x", body=b"{}", headers=[("Content-Type", "application/json")])
    assert status == 202 and headers.get_all("Set-Cookie") == ["s=1; Path=/", "t=2"]
    blob = b"\xff\xfe\x00binary"
    status, _, body = send(url, "POST", "/v2/binary", body=blob, headers=[("Content-Type", "image/png")])
    assert (status, body) == (200, blob[::-1])
    status, _, body = send(url, "GET", "/v2/plain")
    assert (status, json.loads(body)) == (200, {"plain": True})
    status, _, body = send(url, "POST", "/v1/a")
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})
    status, _, body = send(url, "GET", "/v2/fail")
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})

    # CORS configured on the API: preflights answered with 204 without a route; removable.
    apigw.update_api(ApiId=api_id, CorsConfiguration={"AllowOrigins": ["*"], "AllowMethods": ["GET"],
                                                      "AllowHeaders": ["content-type"]})
    assert apigw.get_api(ApiId=api_id)["CorsConfiguration"]["AllowOrigins"] == ["*"]
    pre = [("Origin", "https://app.example"), ("Access-Control-Request-Method", "GET")]
    status, headers, _ = send(url, "OPTIONS", "/v2/plain", headers=pre)
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Headers"] == "content-type"
    status, headers, _ = send(url, "GET", "/v2/plain", headers=[("Origin", "https://app.example")])
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    apigw.delete_cors_configuration(ApiId=api_id)
    assert "CorsConfiguration" not in apigw.get_api(ApiId=api_id)
    status, headers, _ = send(url, "OPTIONS", "/v2/plain", headers=pre)
    assert "Access-Control-Allow-Origin" not in headers
    with pytest.raises(ClientError) as e:
        apigw.update_api(ApiId=api_id, CorsConfiguration={"AllowOrigins": ["*"], "AllowCredentials": True})
    assert e.value.response["Error"]["Code"] == "BadRequestException"

    # Stage throttling through UpdateStage: burst 2, then 429.
    st = apigw.update_stage(ApiId=api_id, StageName="$default",
                            DefaultRouteSettings={"ThrottlingBurstLimit": 2, "ThrottlingRateLimit": 0.01})
    assert st["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 2
    codes = [send(url, "GET", "/v2/plain")[0] for _ in range(3)]
    assert codes == [200, 200, 429]
    # Route settings override the default for one route; each route has its own bucket.
    st = apigw.update_stage(ApiId=api_id, StageName="$default", RouteSettings={
        "GET /v1/{proxy+}": {"ThrottlingBurstLimit": 1, "ThrottlingRateLimit": 0.01}})
    assert st["RouteSettings"]["GET /v1/{proxy+}"]["ThrottlingBurstLimit"] == 1
    assert [send(url, "GET", "/v1/a")[0] for _ in range(2)] == [200, 429]
    assert send(url, "GET", "/v2/special")[0] == 200
    with pytest.raises(ClientError) as e:
        apigw.update_stage(ApiId=api_id, StageName="$default", RouteSettings={"GET /nope": {"ThrottlingBurstLimit": 1}})
    assert e.value.response["Error"]["Code"] == "BadRequestException"
    apigw.delete_route_settings(ApiId=api_id, StageName="$default", RouteKey="GET /v1/{proxy+}")
    assert "GET /v1/{proxy+}" not in apigw.get_stage(ApiId=api_id, StageName="$default").get("RouteSettings", {})
    # A route that sets only its burst keeps the stage's rate: burst 3 here, not the stage's 2.
    apigw.update_stage(ApiId=api_id, StageName="$default", RouteSettings={
        "GET /v1/{proxy+}": {"ThrottlingBurstLimit": 3}})
    assert [send(url, "GET", "/v1/b")[0] for _ in range(4)] == [200, 200, 200, 429]
    apigw.delete_api(ApiId=api_id)
