"""API Gateway HTTP APIs through boto3's apigatewayv2 client, and requests through them."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, create_python, make_zip, raw_request, unique


def request(api_endpoint, method, path, body=None, headers=None):
    """Sends a request to the API endpoint as the server gave it (host-style where *.localhost
    resolves, path-style elsewhere)."""
    status, h, data = raw_request(api_endpoint, method, path, body, list((headers or {}).items()))
    return status, dict(h.items()), data


def test_quick_create_and_routes(lam, apigw):
    name = unique("api")
    fn = create_python(lam, name)["FunctionArn"]
    api = apigw.create_api(Name=name, ProtocolType="HTTP", Target=fn)
    assert (api["ApiEndpoint"].startswith("http://%s.execute-api.localhost:" % api["ApiId"])
            or api["ApiEndpoint"].endswith("/_aws/execute-api/" + api["ApiId"]))
    assert [s["StageName"] for s in apigw.get_stages(ApiId=api["ApiId"])["Items"]] == ["$default"]
    status, headers, body = request(api["ApiEndpoint"], "POST", "/anything/here?a=1", body=b'{"x": 1}',
                                    headers={"Content-Type": "application/json"})
    assert status == 200, body
    out = json.loads(body)
    event = out["event"]
    assert event["version"] == "2.0" and event["rawPath"] == "/anything/here"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["queryStringParameters"] == {"a": "1"}

    # Members Nimbus does not implement are refused unless at their defaults, never ignored.
    with pytest.raises(ClientError) as e:
        apigw.create_api(Name=name + "-v", ProtocolType="HTTP", DisableExecuteApiEndpoint=True)
    assert e.value.response["Error"]["Code"] == "BadRequestException"
    assert "disableExecuteApiEndpoint" in e.value.response["Error"]["Message"]
    plain = apigw.create_api(Name=name + "-d", ProtocolType="HTTP", DisableExecuteApiEndpoint=False)
    apigw.delete_api(ApiId=plain["ApiId"])

    # A second API built step by step: payload 1.0, a path parameter, a named stage.
    api2 = apigw.create_api(Name=name + "-2", ProtocolType="HTTP")
    integ = apigw.create_integration(ApiId=api2["ApiId"], IntegrationType="AWS_PROXY", IntegrationUri=fn,
                                     PayloadFormatVersion="1.0")
    route = apigw.create_route(ApiId=api2["ApiId"], RouteKey="GET /items/{id}",
                               Target="integrations/" + integ["IntegrationId"])
    assert route["RouteKey"] == "GET /items/{id}"
    apigw.create_stage(ApiId=api2["ApiId"], StageName="prod", AutoDeploy=True, StageVariables={"env": "p"})
    status, _, body = request(api2["ApiEndpoint"], "GET", "/prod/items/42")
    # Payload 1.0 needs a statusCode from the function; the Python handler returns a plain object.
    assert status == 500, body
    assert json.loads(body) == {"message": "Internal Server Error"}
    status, _, body = request(api2["ApiEndpoint"], "GET", "/prod/nothing")
    assert status == 404 and json.loads(body) == {"message": "Not Found"}
    assert {a["ApiId"] for a in apigw.get_apis()["Items"]} >= {api["ApiId"], api2["ApiId"]}

    # The parts can be read, changed and removed.
    a2 = api2["ApiId"]
    assert apigw.get_route(ApiId=a2, RouteId=route["RouteId"])["RouteKey"] == "GET /items/{id}"
    apigw.update_route(ApiId=a2, RouteId=route["RouteId"], RouteKey="GET /things/{id}")
    apigw.update_integration(ApiId=a2, IntegrationId=integ["IntegrationId"], PayloadFormatVersion="2.0")
    assert apigw.get_integration(ApiId=a2, IntegrationId=integ["IntegrationId"])["PayloadFormatVersion"] == "2.0"
    status, _, body = request(api2["ApiEndpoint"], "GET", "/prod/things/9")
    assert status == 200, body
    assert json.loads(body)["event"]["pathParameters"] == {"id": "9"}
    stage = apigw.update_stage(ApiId=a2, StageName="prod", StageVariables={"more": "x"})
    assert stage["StageVariables"] == {"env": "p", "more": "x"}
    assert apigw.get_stage(ApiId=a2, StageName="prod")["AutoDeploy"] is True
    with pytest.raises(ClientError) as e:
        apigw.delete_integration(ApiId=a2, IntegrationId=integ["IntegrationId"])
    assert e.value.response["Error"]["Code"] == "ConflictException"
    apigw.delete_route(ApiId=a2, RouteId=route["RouteId"])
    apigw.delete_integration(ApiId=a2, IntegrationId=integ["IntegrationId"])
    dep = apigw.create_deployment(ApiId=a2, Description="d1")
    assert [d["DeploymentId"] for d in apigw.get_deployments(ApiId=a2)["Items"]] == [dep["DeploymentId"]]
    apigw.update_api(ApiId=a2, Name="renamed")
    assert apigw.get_api(ApiId=a2)["Name"] == "renamed"
    apigw.delete_stage(ApiId=a2, StageName="prod")
    apigw.delete_api(ApiId=a2)
    with pytest.raises(ClientError) as e:
        apigw.get_api(ApiId=a2)
    assert e.value.response["Error"]["Code"] == "NotFoundException"


OPENAPI = """
openapi: "3.0.1"
info:
  title: %(name)s
x-amazon-apigateway-cors:
  allowOrigins: ["https://app.example"]
  allowMethods: ["GET"]
paths:
  /items/{id}:
    get:
      x-amazon-apigateway-integration:
        type: aws_proxy
        uri: %(fn)s
        payloadFormatVersion: "2.0"
  /legacy:
    post:
      x-amazon-apigateway-integration:
        type: aws_proxy
        uri: %(fn)s
        payloadFormatVersion: "1.0"
  /$default:
    x-amazon-apigateway-any-method:
      x-amazon-apigateway-integration: {type: aws_proxy, uri: %(fn)s, payloadFormatVersion: "2.0"}
"""


def test_import_and_reimport_openapi(lam, apigw):
    name = unique("import")
    fn = create_python(lam, name)["FunctionArn"]
    api = apigw.import_api(Body=OPENAPI % {"name": name, "fn": fn})
    api_id = api["ApiId"]
    assert api["Name"] == name and api["CorsConfiguration"]["AllowOrigins"] == ["https://app.example"]
    keys = sorted(r["RouteKey"] for r in apigw.get_routes(ApiId=api_id)["Items"])
    assert keys == ["$default", "GET /items/{id}", "POST /legacy"]
    # The two 2.0 integrations are one; the 1.0 one is another.
    assert len(apigw.get_integrations(ApiId=api_id)["Items"]) == 2
    apigw.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
    status, _, body = request(api["ApiEndpoint"], "GET", "/items/7")
    assert status == 200 and json.loads(body)["event"]["pathParameters"] == {"id": "7"}
    status, _, body = request(api["ApiEndpoint"], "GET", "/anything/else")
    assert status == 200 and json.loads(body)["event"]["routeKey"] == "$default"

    # Reimport replaces the routes; the stage stays and serves the new ones.
    apigw.reimport_api(ApiId=api_id, Body=json.dumps({
        "openapi": "3.0.1", "info": {"title": name + "-v2"},
        "paths": {"/only": {"get": {"x-amazon-apigateway-integration": {
            "type": "aws_proxy", "uri": fn, "payloadFormatVersion": "2.0"}}}}}))
    assert [r["RouteKey"] for r in apigw.get_routes(ApiId=api_id)["Items"]] == ["GET /only"]
    assert apigw.get_api(ApiId=api_id)["Name"] == name + "-v2"
    assert request(api["ApiEndpoint"], "GET", "/only")[0] == 200
    assert request(api["ApiEndpoint"], "GET", "/items/7")[0] == 404
    with pytest.raises(ClientError) as e:
        apigw.import_api(Body="openapi: 3.0.1\ninfo: {title: x}\npaths:\n  /a:\n    get:\n"
                              "      x-amazon-apigateway-integration: {type: aws_proxy}\n")
    assert e.value.response["Error"]["Code"] == "BadRequestException"
    apigw.delete_api(ApiId=api_id)


HTTP_AUTHORIZER = '''
def handler(event, context):
    token = event["headers"].get("authorization")
    if token == "boom":
        raise RuntimeError("boom")
    if event.get("version") == "2.0":
        return {"isAuthorized": token == "allow", "context": {"user": "u-" + str(token), "route": event["routeKey"]}}
    effect = "Allow" if token == "allow" else "Deny"
    return {"principalId": "p-" + token, "context": {"via": "iam"},
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}]}}
'''


def test_lambda_authorizers(lam, apigw, server):
    name = unique("httpauth")
    fn = create_python(lam, name)["FunctionArn"]
    lam.create_function(FunctionName=name + "-auth", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": make_zip({"app.py": HTTP_AUTHORIZER})})
    lam.get_waiter("function_active_v2").wait(FunctionName=name + "-auth", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    auth_arn = lam.get_function(FunctionName=name + "-auth")["Configuration"]["FunctionArn"]
    api = apigw.create_api(Name=name, ProtocolType="HTTP")
    api_id = api["ApiId"]
    simple = apigw.create_authorizer(ApiId=api_id, Name="simple", AuthorizerType="REQUEST", AuthorizerUri=auth_arn,
                                     IdentitySource=["$request.header.Authorization"],
                                     AuthorizerPayloadFormatVersion="2.0", EnableSimpleResponses=True)
    iam = apigw.create_authorizer(ApiId=api_id, Name="iam", AuthorizerType="REQUEST", AuthorizerUri=auth_arn,
                                  IdentitySource=["$request.header.Authorization"],
                                  AuthorizerPayloadFormatVersion="1.0", AuthorizerResultTtlInSeconds=0)
    with pytest.raises(ClientError) as e:
        apigw.create_authorizer(ApiId=api_id, Name="jwt", AuthorizerType="JWT", IdentitySource=["$request.header.A"],
                                JwtConfiguration={"Issuer": "https://issuer.example"})
    assert e.value.response["Error"]["Code"] == "BadRequestException"
    integ = apigw.create_integration(ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=fn,
                                     PayloadFormatVersion="2.0")
    target = "integrations/" + integ["IntegrationId"]
    route = apigw.create_route(ApiId=api_id, RouteKey="GET /simple", Target=target, AuthorizationType="CUSTOM",
                               AuthorizerId=simple["AuthorizerId"])
    assert (route["AuthorizationType"], route["AuthorizerId"]) == ("CUSTOM", simple["AuthorizerId"])
    apigw.create_route(ApiId=api_id, RouteKey="GET /iam", Target=target, AuthorizationType="CUSTOM",
                       AuthorizerId=iam["AuthorizerId"])
    apigw.create_route(ApiId=api_id, RouteKey="GET /open", Target=target)
    # An HTTP_PROXY integration behind the authorizer: only authorized requests reach the upstream
    # (here the server's own health endpoint).
    upstream = apigw.create_integration(ApiId=api_id, IntegrationType="HTTP_PROXY", IntegrationMethod="GET",
                                        IntegrationUri=server + "/_nimbus/health", PayloadFormatVersion="1.0")
    proxied = apigw.create_route(ApiId=api_id, RouteKey="GET /proxied",
                                 Target="integrations/" + upstream["IntegrationId"],
                                 AuthorizationType="CUSTOM", AuthorizerId=simple["AuthorizerId"])
    apigw.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
    url = api["ApiEndpoint"]

    def call(path, token=None):
        status, _, body = request(url, "GET", path, headers={"Authorization": token} if token else None)
        return status, json.loads(body)

    assert call("/simple") == (401, {"message": "Unauthorized"})
    assert call("/simple", "nope") == (403, {"message": "Forbidden"})
    assert call("/simple", "boom") == (500, {"message": "Internal Server Error"})
    status, out = call("/simple", "allow")
    assert status == 200
    assert out["event"]["requestContext"]["authorizer"] == {"lambda": {"user": "u-allow", "route": "GET /simple"}}
    status, out = call("/iam", "allow")
    assert status == 200
    assert out["event"]["requestContext"]["authorizer"] == {"lambda": {"via": "iam"}, "principalId": "p-allow"}
    assert call("/iam", "deny") == (403, {"message": "Forbidden"})
    assert call("/open")[0] == 200
    assert call("/proxied") == (401, {"message": "Unauthorized"})
    assert call("/proxied", "nope") == (403, {"message": "Forbidden"})
    assert call("/proxied", "allow") == (200, {"status": "ok"})

    assert len(apigw.get_authorizers(ApiId=api_id)["Items"]) == 2
    with pytest.raises(ClientError) as e:
        apigw.delete_authorizer(ApiId=api_id, AuthorizerId=simple["AuthorizerId"])
    assert e.value.response["Error"]["Code"] == "ConflictException"
    apigw.update_route(ApiId=api_id, RouteId=route["RouteId"], AuthorizationType="NONE")
    apigw.update_route(ApiId=api_id, RouteId=proxied["RouteId"], AuthorizationType="NONE")
    assert call("/simple")[0] == 200
    apigw.delete_authorizer(ApiId=api_id, AuthorizerId=simple["AuthorizerId"])
    apigw.delete_api(ApiId=api_id)
    lam.delete_function(FunctionName=name + "-auth")
