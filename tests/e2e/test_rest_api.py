"""API Gateway REST APIs through boto3's apigateway client: every control-plane operation Nimbus
serves, and requests through a deployed stage (proxy events with multi-value headers and query,
binary bodies in and out, MOCK integrations, stage variables, stage throttling)."""

import base64
import json
import time

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, make_zip, raw_request, unique

HANDLER = '''
import base64, json

def handler(event, context):
    if event["resource"] == "/image":
        data = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
        return {"statusCode": 200, "headers": {"Content-Type": "image/png"},
                "body": base64.b64encode(data[::-1]).decode(), "isBase64Encoded": True}
    return {
        "statusCode": 201,
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({
            "mvq": event["multiValueQueryStringParameters"],
            "rep": event["multiValueHeaders"].get("x-rep"),
            "path": event["path"], "resource": event["resource"],
            "params": event["pathParameters"], "stage": event["requestContext"]["stage"],
            "vars": event["stageVariables"], "b64": event["isBase64Encoded"], "body": event["body"],
        }),
    }
'''


def send(server, api_id, stage, method, path, body=None, headers=()):
    return raw_request(server, method, "/restapis/%s/%s/_user_request_%s" % (api_id, stage, path), body, headers)


def lambda_uri(fn_arn):
    return "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/%s/invocations" % fn_arn


def test_rest_api_end_to_end(server, lam, rest):
    name = unique("rest")
    fn = lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                             Code={"ZipFile": make_zip({"app.py": HANDLER})})
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})

    api = rest.create_rest_api(name=name, description="e2e", binaryMediaTypes=["image/*"])
    api_id = api["id"]
    assert api["rootResourceId"] and api["binaryMediaTypes"] == ["image/*"]
    assert api_id in [a["id"] for a in rest.get_rest_apis()["items"]]
    assert rest.get_rest_api(restApiId=api_id)["name"] == name
    root = api["rootResourceId"]

    items = rest.create_resource(restApiId=api_id, parentId=root, pathPart="items")
    item = rest.create_resource(restApiId=api_id, parentId=items["id"], pathPart="{id}")
    assert item["path"] == "/items/{id}"
    image = rest.create_resource(restApiId=api_id, parentId=root, pathPart="image")
    mock = rest.create_resource(restApiId=api_id, parentId=root, pathPart="mock")
    assert rest.get_resource(restApiId=api_id, resourceId=item["id"])["pathPart"] == "{id}"
    with pytest.raises(ClientError) as e:
        rest.create_resource(restApiId=api_id, parentId=root, pathPart="items")
    assert e.value.response["Error"]["Code"] == "ConflictException"

    for res, method in [(item, "ANY"), (image, "POST")]:
        rest.put_method(restApiId=api_id, resourceId=res["id"], httpMethod=method, authorizationType="NONE")
        rest.put_integration(restApiId=api_id, resourceId=res["id"], httpMethod=method, type="AWS_PROXY",
                             integrationHttpMethod="POST", uri=lambda_uri(fn["FunctionArn"]))
    got = rest.get_method(restApiId=api_id, resourceId=item["id"], httpMethod="ANY")
    assert got["httpMethod"] == "ANY" and got["methodIntegration"]["type"] == "AWS_PROXY"
    assert rest.get_integration(restApiId=api_id, resourceId=item["id"], httpMethod="ANY")["timeoutInMillis"] == 29000

    rest.put_method(restApiId=api_id, resourceId=mock["id"], httpMethod="GET", authorizationType="NONE")
    rest.put_integration(restApiId=api_id, resourceId=mock["id"], httpMethod="GET", type="MOCK",
                         requestTemplates={"application/json": '{"statusCode": 200}'})
    rest.put_method_response(restApiId=api_id, resourceId=mock["id"], httpMethod="GET", statusCode="200",
                             responseParameters={"method.response.header.X-Mock": False})
    rest.put_integration_response(restApiId=api_id, resourceId=mock["id"], httpMethod="GET", statusCode="200",
                                  responseParameters={"method.response.header.X-Mock": "'yes'"},
                                  responseTemplates={"application/json": '{"env": "$stageVariables.env"}'})
    assert rest.get_method_response(restApiId=api_id, resourceId=mock["id"], httpMethod="GET",
                                    statusCode="200")["statusCode"] == "200"
    assert rest.get_integration_response(restApiId=api_id, resourceId=mock["id"], httpMethod="GET",
                                         statusCode="200")["responseParameters"] == {
        "method.response.header.X-Mock": "'yes'"}
    assert len(rest.get_resources(restApiId=api_id)["items"]) == 5

    dep = rest.create_deployment(restApiId=api_id, stageName="dev", variables={"env": "development"})
    rest.create_stage(restApiId=api_id, stageName="prod", deploymentId=dep["id"], variables={"env": "production"})
    assert {s["stageName"] for s in rest.get_stages(restApiId=api_id)["item"]} == {"dev", "prod"}
    assert rest.get_stage(restApiId=api_id, stageName="prod")["deploymentId"] == dep["id"]
    assert [d["id"] for d in rest.get_deployments(restApiId=api_id)["items"]] == [dep["id"]]
    assert rest.get_deployment(restApiId=api_id, deploymentId=dep["id"])["id"] == dep["id"]

    # A proxy request: multi-value query and headers in; status, cookies and JSON out.
    status, headers, body = send(server, api_id, "prod", "PUT", "/items/42?tag=a&tag=b", body=b'{"k": 1}',
                                 headers=[("Content-Type", "application/json"), ("X-Rep", "1"), ("X-Rep", "2")])
    assert status == 201, body
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    out = json.loads(body)
    assert out["mvq"] == {"tag": ["a", "b"]} and out["rep"] == ["1", "2"]
    assert (out["path"], out["resource"], out["params"]) == ("/items/42", "/items/{id}", {"id": "42"})
    assert (out["stage"], out["vars"], out["b64"], out["body"]) == ("prod", {"env": "production"}, False, '{"k": 1}')

    # Binary: a body of a binaryMediaTypes type arrives base64; the answer is binary when accepted.
    png = bytes([0x89, 0x50, 0x4E, 0x47, 0x00, 0xFF, 0xFE])
    status, headers, body = send(server, api_id, "prod", "POST", "/image", body=png,
                                 headers=[("Content-Type", "image/png"), ("Accept", "image/png")])
    assert (status, body) == (200, png[::-1])
    status, _, body = send(server, api_id, "prod", "POST", "/image", body=png,
                           headers=[("Content-Type", "image/png"), ("Accept", "application/json")])
    assert (status, body) == (200, base64.b64encode(png[::-1]))

    status, headers, body = send(server, api_id, "dev", "GET", "/mock")
    assert (status, json.loads(body), headers["X-Mock"]) == (200, {"env": "development"}, "yes")
    status, _, body = send(server, api_id, "prod", "GET", "/nothing/here")
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})

    # UpdateStage: variables and stage-wide throttling (burst 2, next token in 100 s).
    st = rest.update_stage(restApiId=api_id, stageName="dev", patchOperations=[
        {"op": "replace", "path": "/variables/env", "value": "changed"},
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "0.01"},
        {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": "2"},
    ])
    assert st["variables"] == {"env": "changed"}
    assert st["methodSettings"]["*/*"]["throttlingBurstLimit"] == 2
    codes = [send(server, api_id, "dev", "GET", "/mock")[0] for _ in range(3)]
    assert codes == [200, 200, 429]
    status, _, body = send(server, api_id, "dev", "GET", "/mock")
    assert (status, json.loads(body)) == (429, {"message": "Too Many Requests"})
    # Other stages are not throttled.
    assert send(server, api_id, "prod", "GET", "/mock")[0] == 200
    with pytest.raises(ClientError) as e:
        rest.update_stage(restApiId=api_id, stageName="dev",
                          patchOperations=[{"op": "replace", "path": "/bogus", "value": "1"}])
    assert e.value.response["Error"]["Code"] == "BadRequestException"

    assert rest.update_rest_api(restApiId=api_id, patchOperations=[
        {"op": "replace", "path": "/description", "value": "changed"}])["description"] == "changed"

    # In-place updates as Terraform makes them, served after a new deployment.
    rest.update_integration_response(
        restApiId=api_id, resourceId=mock["id"], httpMethod="GET", statusCode="200",
        patchOperations=[{"op": "replace", "path": "/responseTemplates/application~1json",
                          "value": '{"updated": "$stageVariables.env"}'}])
    integ = rest.update_integration(restApiId=api_id, resourceId=mock["id"], httpMethod="GET",
                                    patchOperations=[{"op": "replace", "path": "/timeoutInMillis", "value": "5000"}])
    assert integ["timeoutInMillis"] == 5000
    method = rest.update_method(restApiId=api_id, resourceId=mock["id"], httpMethod="GET", patchOperations=[
        {"op": "add", "path": "/requestParameters/method.request.querystring.q", "value": "false"}])
    assert method["requestParameters"] == {"method.request.querystring.q": False}
    with pytest.raises(ClientError) as e:
        rest.update_integration(restApiId=api_id, resourceId=mock["id"], httpMethod="GET",
                                patchOperations=[{"op": "replace", "path": "/timeoutInMillis", "value": "40000"}])
    assert e.value.response["Error"]["Code"] == "BadRequestException"
    dep2 = rest.create_deployment(restApiId=api_id, stageName="prod")
    status, _, body = send(server, api_id, "prod", "GET", "/mock")
    assert (status, json.loads(body)) == (200, {"updated": "production"})

    # Renaming a resource moves everything under it; other updates.
    renamed = rest.update_resource(restApiId=api_id, resourceId=items["id"],
                                   patchOperations=[{"op": "replace", "path": "/pathPart", "value": "things"}])
    assert renamed["path"] == "/things"
    assert rest.get_resource(restApiId=api_id, resourceId=item["id"])["path"] == "/things/{id}"
    mr = rest.update_method_response(restApiId=api_id, resourceId=mock["id"], httpMethod="GET", statusCode="200",
                                     patchOperations=[{"op": "add", "path": "/responseParameters/method.response.header.X-Extra",
                                                       "value": "false"}])
    assert mr["responseParameters"]["method.response.header.X-Extra"] is False
    assert rest.update_deployment(restApiId=api_id, deploymentId=dep2["id"], patchOperations=[
        {"op": "replace", "path": "/description", "value": "second"}])["description"] == "second"

    # Deletes, each answered as API Gateway does, and gone afterwards.
    rest.delete_integration_response(restApiId=api_id, resourceId=mock["id"], httpMethod="GET", statusCode="200")
    rest.delete_method_response(restApiId=api_id, resourceId=mock["id"], httpMethod="GET", statusCode="200")
    rest.delete_integration(restApiId=api_id, resourceId=mock["id"], httpMethod="GET")
    rest.delete_method(restApiId=api_id, resourceId=mock["id"], httpMethod="GET")
    with pytest.raises(ClientError) as e:
        rest.get_method(restApiId=api_id, resourceId=mock["id"], httpMethod="GET")
    assert e.value.response["Error"]["Code"] == "NotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    rest.delete_resource(restApiId=api_id, resourceId=items["id"])
    assert {r["path"] for r in rest.get_resources(restApiId=api_id)["items"]} == {"/", "/image", "/mock"}
    rest.delete_stage(restApiId=api_id, stageName="dev")
    rest.delete_deployment(restApiId=api_id, deploymentId=dep["id"])
    with pytest.raises(ClientError) as e:
        rest.delete_deployment(restApiId=api_id, deploymentId=dep2["id"])
    assert e.value.response["Error"]["Code"] == "BadRequestException"
    rest.delete_stage(restApiId=api_id, stageName="prod")
    rest.delete_deployment(restApiId=api_id, deploymentId=dep2["id"])
    rest.delete_rest_api(restApiId=api_id)
    with pytest.raises(ClientError) as e:
        rest.get_rest_api(restApiId=api_id)
    assert e.value.response["Error"]["Code"] == "NotFoundException"
    lam.delete_function(FunctionName=name)


TWILIO_FN = '''
def handler(event, context):
    return "Thanks %s, got '%s' with %s image(s)" % (event["fromNumber"], event["body"], event["numMedia"])
'''

# The shape of AWS's own sample (aws-samples/lambda-apigateway-twilio-tutorial, sam/swagger.yaml):
# GET with query parameters, an `aws` integration with a JSON request template built from
# $input.params, a function returning a plain string, and an XML response template.
SWAGGER = '''
swagger: "2.0"
info:
  title: %(name)s
  description: imported
paths:
  /addphoto:
    get:
      parameters:
        - {name: Body, in: query, required: false, type: string}
        - {name: From, in: query, required: false, type: string}
        - {name: NumMedia, in: query, required: false, type: string}
      responses:
        "200":
          description: ok
          headers:
            Content-Type: {type: string}
      x-amazon-apigateway-integration:
        type: aws
        httpMethod: POST
        uri: %(uri)s
        passthroughBehavior: when_no_templates
        requestTemplates:
          application/json: |-
            {
              "fromNumber": "$util.escapeJavaScript($input.params('From'))",
              "body": "$util.escapeJavaScript($input.params('Body'))",
              "numMedia": "$util.escapeJavaScript($input.params('NumMedia'))"
            }
        responses:
          default:
            statusCode: "200"
            responseParameters:
              method.response.header.Content-Type: "'application/xml'"
            responseTemplates:
              application/xml: |-
                <?xml version="1.0" encoding="UTF-8"?><Response><Message>$input.path('$')</Message></Response>
'''

HEALTH = '''{
  "openapi": "3.0.1",
  "info": {"title": "health"},
  "paths": {"/health": {"get": {
    "responses": {"200": {"description": "ok"}},
    "x-amazon-apigateway-integration": {
      "type": "mock", "requestTemplates": {"application/json": "{\\"statusCode\\": 200}"},
      "responses": {"default": {"statusCode": "200", "responseTemplates": {"application/json": "{\\"healthy\\": true}"}}}
    }
  }}}
}'''


def test_import_openapi_definitions(server, lam, rest):
    name = unique("imported")
    fn = lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                             Code={"ZipFile": make_zip({"app.py": TWILIO_FN})})
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})

    api = rest.import_rest_api(body=(SWAGGER % {"name": name, "uri": lambda_uri(fn["FunctionArn"])}).encode())
    api_id = api["id"]
    assert (api["name"], api["description"]) == (name, "imported")
    paths = {r["path"]: r for r in rest.get_resources(restApiId=api_id)["items"]}
    assert set(paths) == {"/", "/addphoto"}
    method = rest.get_method(restApiId=api_id, resourceId=paths["/addphoto"]["id"], httpMethod="GET")
    assert method["requestParameters"]["method.request.querystring.Body"] is False
    assert method["methodIntegration"]["passthroughBehavior"] == "WHEN_NO_TEMPLATES"
    rest.create_deployment(restApiId=api_id, stageName="prod")
    status, headers, body = send(server, api_id, "prod", "GET", "/addphoto?Body=hello&From=%2B15551234567&NumMedia=1")
    assert status == 200, body
    assert headers["Content-Type"] == "application/xml"
    assert body.decode() == ('<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
                             "Thanks +15551234567, got 'hello' with 1 image(s)</Message></Response>")

    # Merge adds; overwrite replaces everything.
    rest.put_rest_api(restApiId=api_id, mode="merge", body=HEALTH.encode())
    assert {r["path"] for r in rest.get_resources(restApiId=api_id)["items"]} == {"/", "/addphoto", "/health"}
    rest.put_rest_api(restApiId=api_id, mode="overwrite", body=HEALTH.encode())
    assert {r["path"] for r in rest.get_resources(restApiId=api_id)["items"]} == {"/", "/health"}
    assert rest.get_rest_api(restApiId=api_id)["name"] == "health"
    rest.create_deployment(restApiId=api_id, stageName="prod")
    status, _, body = send(server, api_id, "prod", "GET", "/health")
    assert (status, json.loads(body)) == (200, {"healthy": True})

    for bad, needle in [(b"{}", "neither"), (b"swagger: '2.0'\ninfo: {title: x}\npaths:\n  /a:\n    get:\n"
                                            b"      x-amazon-apigateway-integration: {type: aws}\n", "uri")]:
        with pytest.raises(ClientError) as e:
            rest.import_rest_api(body=bad)
        assert e.value.response["Error"]["Code"] == "BadRequestException"
        assert needle in e.value.response["Error"]["Message"]
    rest.delete_rest_api(restApiId=api_id)
    lam.delete_function(FunctionName=name)


AUTHORIZER_FN = '''
CALLS = 0

def handler(event, context):
    global CALLS
    CALLS += 1
    token = event.get("authorizationToken") or event.get("queryStringParameters", {}).get("key")
    if token == "boom":
        raise RuntimeError("boom")
    if token not in ("allow", "deny"):
        raise Exception("Unauthorized")
    api = event["methodArn"].split("/")[0]
    return {"principalId": "user-" + token,
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow" if token == "allow" else "Deny",
                 "Resource": api + "/*/GET/*"}]},
            "context": {"tier": "gold", "calls": CALLS, "type": event["type"]}}
'''

BACKEND_FN = '''
import json

def handler(event, context):
    return {"statusCode": 200, "body": json.dumps(event["requestContext"].get("authorizer"))}
'''


def test_lambda_authorizers(server, lam, rest):
    name = unique("authz")
    fns = {}
    for suffix, code in (("auth", AUTHORIZER_FN), ("backend", BACKEND_FN)):
        fns[suffix] = lam.create_function(FunctionName="%s-%s" % (name, suffix), Runtime="python3.11", Role=ROLE,
                                          Handler="app.handler", Code={"ZipFile": make_zip({"app.py": code})})
        lam.get_waiter("function_active_v2").wait(FunctionName="%s-%s" % (name, suffix),
                                                  WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    api = rest.create_rest_api(name=name)
    api_id, root = api["id"], api["rootResourceId"]
    token = rest.create_authorizer(restApiId=api_id, name="token", type="TOKEN",
                                   authorizerUri=lambda_uri(fns["auth"]["FunctionArn"]),
                                   identitySource="method.request.header.Authorization",
                                   authorizerResultTtlInSeconds=0)
    request = rest.create_authorizer(restApiId=api_id, name="request", type="REQUEST",
                                     authorizerUri=lambda_uri(fns["auth"]["FunctionArn"]),
                                     identitySource="method.request.querystring.key",
                                     authorizerResultTtlInSeconds=300)
    assert {a["name"] for a in rest.get_authorizers(restApiId=api_id)["items"]} == {"token", "request"}
    assert rest.get_authorizer(restApiId=api_id, authorizerId=token["id"])["authorizerResultTtlInSeconds"] == 0
    with pytest.raises(ClientError) as e:
        rest.create_authorizer(restApiId=api_id, name="cognito", type="COGNITO_USER_POOLS", providerARNs=["x"])
    assert e.value.response["Error"]["Code"] == "BadRequestException"

    for part, auth in (("private", token), ("cached", request)):
        res = rest.create_resource(restApiId=api_id, parentId=root, pathPart=part)
        for method in ("GET", "POST"):
            rest.put_method(restApiId=api_id, resourceId=res["id"], httpMethod=method, authorizationType="CUSTOM",
                            authorizerId=auth["id"])
            rest.put_integration(restApiId=api_id, resourceId=res["id"], httpMethod=method, type="AWS_PROXY",
                                 integrationHttpMethod="POST", uri=lambda_uri(fns["backend"]["FunctionArn"]))
    # A MOCK integration reads the authorizer's output through $context.authorizer.
    mocked = rest.create_resource(restApiId=api_id, parentId=root, pathPart="mocked")
    rest.put_method(restApiId=api_id, resourceId=mocked["id"], httpMethod="GET", authorizationType="CUSTOM",
                    authorizerId=token["id"])
    rest.put_integration(restApiId=api_id, resourceId=mocked["id"], httpMethod="GET", type="MOCK",
                         requestTemplates={"application/json": '{"statusCode": 200}'})
    rest.put_method_response(restApiId=api_id, resourceId=mocked["id"], httpMethod="GET", statusCode="200")
    rest.put_integration_response(restApiId=api_id, resourceId=mocked["id"], httpMethod="GET", statusCode="200",
                                  responseTemplates={"application/json": '{"p": "$context.authorizer.principalId", '
                                                                         '"t": "$context.authorizer.tier"}'})
    with pytest.raises(ClientError) as e:
        rest.put_method(restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="CUSTOM",
                        authorizerId="nope")
    assert e.value.response["Error"]["Code"] == "BadRequestException"
    rest.create_deployment(restApiId=api_id, stageName="prod")

    def call(method, path, headers=()):
        status, _, body = send(server, api_id, "prod", method, path, headers=headers)
        return status, json.loads(body)

    assert call("GET", "/private") == (401, {"message": "Unauthorized"})
    assert call("GET", "/private", [("Authorization", "nope")]) == (401, {"message": "Unauthorized"})
    status, body = call("GET", "/private", [("Authorization", "allow")])
    assert status == 200
    assert (body["principalId"], body["tier"], body["type"]) == ("user-allow", "gold", "TOKEN")
    # The policy allows GET only: POST has no matching statement.
    assert call("POST", "/private", [("Authorization", "allow")]) == (
        403, {"Message": "User is not authorized to access this resource"})
    assert call("GET", "/private", [("Authorization", "deny")]) == (
        403, {"Message": "User is not authorized to access this resource with an explicit deny"})
    assert call("GET", "/private", [("Authorization", "boom")]) == (500, {"message": None})
    assert call("GET", "/mocked", [("Authorization", "allow")]) == (200, {"p": "user-allow", "t": "gold"})

    # A REQUEST authorizer with caching: the second request reuses the first result.
    status, first = call("GET", "/cached?key=allow")
    assert status == 200 and first["type"] == "REQUEST"
    status, second = call("GET", "/cached?key=allow")
    assert status == 200 and second["calls"] == first["calls"]
    assert call("GET", "/cached")[0] == 401

    with pytest.raises(ClientError) as e:
        rest.delete_authorizer(restApiId=api_id, authorizerId=token["id"])
    assert e.value.response["Error"]["Code"] == "ConflictException"
    updated = rest.update_authorizer(restApiId=api_id, authorizerId=token["id"], patchOperations=[
        {"op": "replace", "path": "/authorizerResultTtlInSeconds", "value": "60"}])
    assert updated["authorizerResultTtlInSeconds"] == 60
    rest.delete_rest_api(restApiId=api_id)
    for suffix in fns:
        lam.delete_function(FunctionName="%s-%s" % (name, suffix))


def test_api_keys_and_usage_plans(server, rest):
    api = rest.create_rest_api(name=unique("keys"))
    api_id, root = api["id"], api["rootResourceId"]
    res = rest.create_resource(restApiId=api_id, parentId=root, pathPart="paid")
    rest.put_method(restApiId=api_id, resourceId=res["id"], httpMethod="GET", authorizationType="NONE",
                    apiKeyRequired=True)
    rest.put_integration(restApiId=api_id, resourceId=res["id"], httpMethod="GET", type="MOCK",
                         requestTemplates={"application/json": '{"statusCode": 200}'})
    rest.put_method_response(restApiId=api_id, resourceId=res["id"], httpMethod="GET", statusCode="200")
    rest.put_integration_response(restApiId=api_id, resourceId=res["id"], httpMethod="GET", statusCode="200",
                                  responseTemplates={"application/json": '{"key": "$context.identity.apiKeyId"}'})
    rest.create_deployment(restApiId=api_id, stageName="prod")

    key = rest.create_api_key(name=unique("k"), enabled=True, value="a-key-of-twenty-or-more-chars")
    assert key["value"] == "a-key-of-twenty-or-more-chars"
    assert "value" not in rest.get_api_key(apiKey=key["id"])
    assert rest.get_api_key(apiKey=key["id"], includeValue=True)["value"] == key["value"]
    with pytest.raises(ClientError) as e:
        rest.create_api_key(name="short", value="short")
    assert e.value.response["Error"]["Code"] == "BadRequestException"
    plan = rest.create_usage_plan(name=unique("plan"), apiStages=[{"apiId": api_id, "stage": "prod"}],
                                  throttle={"rateLimit": 100, "burstLimit": 100},
                                  quota={"limit": 3, "period": "DAY"})
    assert plan["quota"] == {"limit": 3, "offset": 0, "period": "DAY"}

    # No key, or a key in no plan yet: 403.
    assert send(server, api_id, "prod", "GET", "/paid")[0] == 403
    status, _, body = send(server, api_id, "prod", "GET", "/paid", headers=[("x-api-key", key["value"])])
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})
    rest.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    assert [k["id"] for k in rest.get_usage_plan_keys(usagePlanId=plan["id"])["items"]] == [key["id"]]
    # Within the quota of 3 a day, then 429 Limit Exceeded.
    for _ in range(3):
        status, _, body = send(server, api_id, "prod", "GET", "/paid", headers=[("x-api-key", key["value"])])
        assert (status, json.loads(body)) == (200, {"key": key["id"]})
    status, _, body = send(server, api_id, "prod", "GET", "/paid", headers=[("x-api-key", key["value"])])
    assert (status, json.loads(body)) == (429, {"message": "Limit Exceeded"})
    # A disabled key is refused.
    rest.update_api_key(apiKey=key["id"], patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}])
    assert send(server, api_id, "prod", "GET", "/paid", headers=[("x-api-key", key["value"])])[0] == 403

    assert plan["id"] in [p["id"] for p in rest.get_usage_plans(keyId=key["id"])["items"]]
    # A throttled request does not count against the quota: burst 1 at 2 a second, quota 2.
    slow = rest.create_usage_plan(name=unique("slow"), apiStages=[{"apiId": api_id, "stage": "prod"}],
                                  throttle={"rateLimit": 2, "burstLimit": 1}, quota={"limit": 2, "period": "DAY"})
    key2 = rest.create_api_key(name=unique("k2"), enabled=True, value="another-key-of-twenty-chars")
    rest.create_usage_plan_key(usagePlanId=slow["id"], keyId=key2["id"], keyType="API_KEY")

    def paid():
        status, _, body = send(server, api_id, "prod", "GET", "/paid", headers=[("x-api-key", key2["value"])])
        return status, json.loads(body)
    assert paid()[0] == 200
    assert paid() == (429, {"message": "Too Many Requests"})
    time.sleep(0.7)
    assert paid()[0] == 200, "the throttled request was not counted"
    time.sleep(0.7)
    assert paid() == (429, {"message": "Limit Exceeded"})
    rest.delete_usage_plan_key(usagePlanId=slow["id"], keyId=key2["id"])
    rest.delete_usage_plan(usagePlanId=slow["id"])
    rest.delete_api_key(apiKey=key2["id"])

    rest.delete_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"])
    rest.delete_usage_plan(usagePlanId=plan["id"])
    rest.delete_api_key(apiKey=key["id"])
    with pytest.raises(ClientError) as e:
        rest.get_api_key(apiKey=key["id"])
    assert e.value.response["Error"]["Code"] == "NotFoundException"
    rest.delete_rest_api(restApiId=api_id)


def test_gateway_responses(server, rest):
    """Customised gateway responses, as `cors: true` in the serverless framework sets them up:
    CORS headers on every 4XX, and a THROTTLED response of its own."""
    api = rest.create_rest_api(name=unique("gwresp"))
    api_id, root = api["id"], api["rootResourceId"]
    res = rest.create_resource(restApiId=api_id, parentId=root, pathPart="ok")
    rest.put_method(restApiId=api_id, resourceId=res["id"], httpMethod="GET", authorizationType="NONE")
    rest.put_integration(restApiId=api_id, resourceId=res["id"], httpMethod="GET", type="MOCK",
                         requestTemplates={"application/json": '{"statusCode": 200}'})
    rest.put_method_response(restApiId=api_id, resourceId=res["id"], httpMethod="GET", statusCode="200")
    rest.put_integration_response(restApiId=api_id, resourceId=res["id"], httpMethod="GET", statusCode="200",
                                  responseTemplates={"application/json": '{"ok": true}'})
    rest.create_deployment(restApiId=api_id, stageName="prod")

    rest.put_gateway_response(restApiId=api_id, responseType="DEFAULT_4XX",
                              responseParameters={"gatewayresponse.header.Access-Control-Allow-Origin": "'*'"},
                              responseTemplates={"application/json": '{"error": $context.error.messageString, '
                                                                     '"type": "$context.error.responseType"}'})
    rest.put_gateway_response(restApiId=api_id, responseType="THROTTLED", statusCode="503",
                              responseTemplates={"application/json": '{"slow": "down"}'})
    assert rest.get_gateway_response(restApiId=api_id, responseType="THROTTLED")["statusCode"] == "503"
    assert {g["responseType"] for g in rest.get_gateway_responses(restApiId=api_id)["items"]} == {
        "DEFAULT_4XX", "THROTTLED"}
    with pytest.raises(ClientError) as e:
        rest.put_gateway_response(restApiId=api_id, responseType="NOT_A_TYPE")
    assert e.value.response["Error"]["Code"] == "BadRequestException"

    status, headers, body = send(server, api_id, "prod", "GET", "/missing")
    assert status == 403 and headers["Access-Control-Allow-Origin"] == "*"
    assert json.loads(body) == {"error": "Missing Authentication Token", "type": "MISSING_AUTHENTICATION_TOKEN"}
    # Responses from the integration are not touched.
    status, headers, body = send(server, api_id, "prod", "GET", "/ok")
    assert (status, json.loads(body)) == (200, {"ok": True}) and "Access-Control-Allow-Origin" not in headers

    rest.update_stage(restApiId=api_id, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "0.01"},
        {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": "1"}])
    assert send(server, api_id, "prod", "GET", "/ok")[0] == 200
    status, _, body = send(server, api_id, "prod", "GET", "/ok")
    assert (status, json.loads(body)) == (503, {"slow": "down"})

    rest.delete_gateway_response(restApiId=api_id, responseType="DEFAULT_4XX")
    status, headers, body = send(server, api_id, "prod", "GET", "/missing")
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})
    assert "Access-Control-Allow-Origin" not in headers
    rest.delete_rest_api(restApiId=api_id)


def test_http_integration_with_templates(server, rest):
    """A non-proxy HTTP integration: the mapped body goes to the upstream, whose status code
    selects the integration response and its template."""
    import http.server
    import threading

    class Upstream(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = 404 if self.path.split("?")[0].endswith("/none") else 200
            out = json.dumps({"path": self.path, "echo": json.loads(body),
                              "team": self.headers.get("X-Team")}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        api = rest.create_rest_api(name=unique("http"))
        api_id, root = api["id"], api["rootResourceId"]
        items = rest.create_resource(restApiId=api_id, parentId=root, pathPart="items")
        item = rest.create_resource(restApiId=api_id, parentId=items["id"], pathPart="{id}")
        rest.put_method(restApiId=api_id, resourceId=item["id"], httpMethod="GET", authorizationType="NONE")
        rest.put_integration(restApiId=api_id, resourceId=item["id"], httpMethod="GET", type="HTTP",
                             integrationHttpMethod="POST",
                             uri="http://127.0.0.1:%d/upstream/{item}" % upstream.server_address[1],
                             requestParameters={"integration.request.path.item": "method.request.path.id",
                                                "integration.request.header.X-Team": "method.request.querystring.q",
                                                "integration.request.querystring.verbose": "'yes'"},
                             requestTemplates={"application/json": '{"id": "$input.params(\'id\')", '
                                                                   '"q": "$input.params(\'q\')"}'})
        for code in ("200", "404"):
            rest.put_method_response(restApiId=api_id, resourceId=item["id"], httpMethod="GET", statusCode=code)
        rest.put_integration_response(restApiId=api_id, resourceId=item["id"], httpMethod="GET", statusCode="200",
                                      responseTemplates={"application/json": '{"item": $input.json(\'$.echo\'), '
                                                                             '"from": "$input.path(\'$.path\')", '
                                                                             '"team": "$input.path(\'$.team\')"}'})
        rest.put_integration_response(restApiId=api_id, resourceId=item["id"], httpMethod="GET", statusCode="404",
                                      selectionPattern="4\\d{2}",
                                      responseTemplates={"application/json": '{"missing": true}'})
        rest.create_deployment(restApiId=api_id, stageName="prod")
        status, _, body = send(server, api_id, "prod", "GET", "/items/42?q=x")
        assert (status, json.loads(body)) == (200, {"item": {"id": "42", "q": "x"},
                                                    "from": "/upstream/42?verbose=yes", "team": "x"})
        status, _, body = send(server, api_id, "prod", "GET", "/items/none")
        assert (status, json.loads(body)) == (404, {"missing": True})
        rest.delete_rest_api(restApiId=api_id)
    finally:
        upstream.shutdown()


def test_request_validators_and_models(server, rest):
    api = rest.create_rest_api(name=unique("valid"))
    api_id, root = api["id"], api["rootResourceId"]
    schema = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
              "required": ["name"], "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
    model = rest.create_model(restApiId=api_id, name="Person", contentType="application/json",
                              schema=json.dumps(schema))
    assert model["name"] == "Person"
    with pytest.raises(ClientError) as e:
        rest.create_model(restApiId=api_id, name="Broken", contentType="application/json", schema="{not json")
    assert e.value.response["Error"]["Code"] == "BadRequestException"
    both = rest.create_request_validator(restApiId=api_id, name="both", validateRequestBody=True,
                                         validateRequestParameters=True)
    assert rest.get_request_validator(restApiId=api_id, requestValidatorId=both["id"])["validateRequestBody"] is True
    res = rest.create_resource(restApiId=api_id, parentId=root, pathPart="people")
    rest.put_method(restApiId=api_id, resourceId=res["id"], httpMethod="POST", authorizationType="NONE",
                    requestValidatorId=both["id"], requestModels={"application/json": "Person"},
                    requestParameters={"method.request.querystring.team": True,
                                       "method.request.header.X-Trace": False})
    rest.put_integration(restApiId=api_id, resourceId=res["id"], httpMethod="POST", type="MOCK",
                         requestTemplates={"application/json": '{"statusCode": 200}'})
    rest.put_method_response(restApiId=api_id, resourceId=res["id"], httpMethod="POST", statusCode="200")
    rest.put_integration_response(restApiId=api_id, resourceId=res["id"], httpMethod="POST", statusCode="200",
                                  responseTemplates={"application/json": '{"ok": true}'})
    rest.create_deployment(restApiId=api_id, stageName="prod")
    ct = [("Content-Type", "application/json")]

    status, _, body = send(server, api_id, "prod", "POST", "/people", body=b'{"name": "Ann"}', headers=ct)
    assert (status, json.loads(body)) == (400, {"message": "Missing required request parameters: [team]"})
    status, _, body = send(server, api_id, "prod", "POST", "/people?team=a", body=b'{"age": "old"}', headers=ct)
    assert (status, json.loads(body)) == (400, {"message": "Invalid request body"})
    status, _, body = send(server, api_id, "prod", "POST", "/people?team=a", body=b'{"name": "Ann", "age": 3}',
                           headers=ct)
    assert (status, json.loads(body)) == (200, {"ok": True})

    # Validation off: anything passes.
    rest.update_request_validator(restApiId=api_id, requestValidatorId=both["id"], patchOperations=[
        {"op": "replace", "path": "/validateRequestBody", "value": "false"},
        {"op": "replace", "path": "/validateRequestParameters", "value": "false"}])
    rest.create_deployment(restApiId=api_id, stageName="prod")
    assert send(server, api_id, "prod", "POST", "/people", body=b'{}', headers=ct)[0] == 200
    with pytest.raises(ClientError) as e:
        rest.delete_model(restApiId=api_id, modelName="Person")
    assert e.value.response["Error"]["Code"] == "ConflictException"
    rest.delete_rest_api(restApiId=api_id)
