"""API Gateway HTTP APIs through boto3's apigatewayv2 client, and requests through them."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import create_python, raw_request, unique


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
