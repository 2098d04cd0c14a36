use super::*;
use crate::call;
use agw_mcp::upstream::HttpTarget;
use http::HeaderMap;

fn petstore() -> Spec {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/openapi/petstore.yaml")).unwrap();
    parse(&text).unwrap()
}

fn op<'a>(s: &'a Spec, name: &str) -> &'a Operation {
    s.operations.iter().find(|o| o.name == name).unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn operations_become_tools_with_grouped_inputs() {
    let s = petstore();
    assert_eq!(s.base_path, "/v1");
    let mut names: Vec<&str> = s.operations.iter().map(|o| o.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["createPets", "delete_pets_petId", "listPets", "showPetById"]);

    let list = op(&s, "listPets");
    assert_eq!(list.method, Method::GET);
    let schema = &list.tool["inputSchema"];
    assert_eq!(schema["properties"]["query"]["properties"]["limit"]["type"], "integer");
    assert_eq!(schema["properties"]["query"]["properties"]["species"]["type"], "array", "from a $ref parameter");
    assert_eq!(schema["required"], json!([]), "no required group");
    assert_eq!(list.tool["annotations"]["readOnlyHint"], true);
    assert_eq!(list.tool["title"], "List all pets");

    let show = op(&s, "showPetById");
    assert_eq!(show.tool["inputSchema"]["required"], json!(["path"]), "path-level parameter, required");
    assert_eq!(show.tool["inputSchema"]["properties"]["path"]["required"], json!(["petId"]));

    let create = op(&s, "createPets");
    assert_eq!(create.body, Some(BodyKind::Json));
    let body = &create.tool["inputSchema"]["properties"]["body"];
    assert_eq!(body["required"], json!(["id", "name"]), "the $ref was resolved");
    assert_eq!(body["properties"]["parent"]["description"], "(recursive: Pet)", "a cycle is cut");
    assert_eq!(create.tool["inputSchema"]["required"], json!(["body"]));
    assert_eq!(create.tool["annotations"]["readOnlyHint"], false);

    let delete = op(&s, "delete_pets_petId");
    assert_eq!(delete.tool["annotations"]["destructiveHint"], true);
    assert_eq!(delete.tool["description"], "Delete a pet");
}

#[test]
fn bad_specs_are_refused_with_a_reason() {
    assert!(parse(r#"{"swagger": "2.0", "paths": {}}"#).unwrap_err().contains("Swagger 2.0"));
    assert!(parse("openapi: 3.0.0\ninfo: {title: x}\n").unwrap_err().contains("no `paths`"));
    let external = r#"{"openapi": "3.1.0", "paths": {"/a": {"get": {"parameters": [{"$ref": "other.yaml#/p"}]}}}}"#;
    assert!(parse(external).unwrap_err().contains("only references inside the document"));
    let dangling = r##"{"openapi": "3.1.0", "paths": {"/a": {"get": {"parameters": [{"$ref": "#/nope"}]}}}}"##;
    assert!(parse(dangling).unwrap_err().contains("points at nothing"));
    assert!(parse("{not json").unwrap_err().contains("not valid JSON"));
    // A path that does not start with `/` would be appended to the host.
    let hijack = r#"{"openapi": "3.1.0", "paths": {"@evil.example/x": {"get": {}}}}"#;
    assert!(parse(hijack).unwrap_err().contains("must start with `/`"));
    assert!(parse(&" ".repeat(MAX_SPEC_BYTES + 1)).unwrap_err().contains("MiB"));
}

#[test]
fn a_ref_chain_loop_is_an_error_and_expansion_is_bounded() {
    let looped = r##"{"openapi": "3.0.0", "components": {"parameters": {"a": {"$ref": "#/components/parameters/b"}, "b": {"$ref": "#/components/parameters/a"}}},
        "paths": {"/x": {"get": {"parameters": [{"$ref": "#/components/parameters/a"}]}}}}"##;
    assert!(parse(looped).unwrap_err().contains("deeper than"));
    // Each level references the next twice: 2^40 nodes if expanded naively.
    let mut schemas = Map::new();
    for i in 0..40 {
        let next = format!("#/components/schemas/s{}", i + 1);
        schemas.insert(
            format!("s{i}"),
            json!({"type": "object", "properties": {"a": {"$ref": next}, "b": {"$ref": next}}}),
        );
    }
    schemas.insert("s40".into(), json!({"type": "string"}));
    let doc = json!({"openapi": "3.1.0", "components": {"schemas": schemas},
        "paths": {"/x": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/s0"}}}}}}}});
    assert!(from_value(&doc).unwrap_err().contains("exceed"));
}

#[test]
fn names_are_valid_mcp_tool_names() {
    assert_eq!(tool_name(Some("list pets/all"), "get", "/x"), "list_pets_all");
    assert_eq!(tool_name(None, "get", "/users/{id}/posts"), "get_users_id_posts");
    assert_eq!(tool_name(Some("   "), "post", "/"), "post");
    assert_eq!(tool_name(Some(&"x".repeat(300)), "get", "/").len(), 128);
    // Duplicates get a suffix.
    let doc = json!({"openapi": "3.0.0", "paths": {"/a": {"get": {"operationId": "same"}}, "/b": {"get": {"operationId": "same"}}}});
    let names: Vec<String> = from_value(&doc).unwrap().operations.into_iter().map(|o| o.name).collect();
    assert_eq!(names, ["same", "same_2"]);
}

#[test]
fn server_urls_give_the_base_path() {
    let base = |servers: Value| base_path(&json!({"servers": servers}));
    assert_eq!(base(json!([{"url": "https://api.example.com/v2/"}])), "/v2");
    assert_eq!(base(json!([{"url": "/api/v3"}])), "/api/v3");
    assert_eq!(base(json!([{"url": "https://api.example.com"}])), "");
    assert_eq!(
        base(
            json!([{"url": "{scheme}://h/{ver}", "variables": {"ver": {"default": "v9"}, "scheme": {"default": "https"}}}])
        ),
        "/v9"
    );
    assert_eq!(base(json!([])), "");
}

#[test]
fn requests_carry_declared_parameters_escaped() {
    let s = petstore();
    let service = HttpTarget::new("http://127.0.0.1:9/?api_key=k1".parse().unwrap());
    let forwarded = HeaderMap::from_iter([
        (http::header::AUTHORIZATION, "Bearer t".parse().unwrap()),
        (http::HeaderName::from_static("mcp-session-id"), "s".parse().unwrap()),
    ]);
    let req =
        call::request(&service, &s.base_path, op(&s, "showPetById"), &json!({"path": {"petId": "a/b c?"}}), &forwarded)
            .unwrap();
    assert_eq!(req.uri().to_string(), "http://127.0.0.1:9/v1/pets/a%2Fb%20c%3F?api_key=k1");
    assert_eq!(req.headers()["authorization"], "Bearer t");
    assert!(req.headers().get("mcp-session-id").is_none());

    let args = json!({"query": {"limit": 5, "species": ["cat", "dog"], "undeclared": "x"}});
    let req = call::request(&service, &s.base_path, op(&s, "listPets"), &args, &HeaderMap::new()).unwrap();
    assert_eq!(req.uri().query(), Some("api_key=k1&limit=5&species=cat&species=dog"));

    let missing = call::request(&service, &s.base_path, op(&s, "showPetById"), &json!({}), &HeaderMap::new());
    assert_eq!(missing.unwrap_err(), "missing path parameter `petId`");
    let not_object = call::request(&service, &s.base_path, op(&s, "listPets"), &json!([1]), &HeaderMap::new());
    assert!(not_object.is_err());

    let req = call::request(
        &service,
        &s.base_path,
        op(&s, "createPets"),
        &json!({"body": {"id": 1, "name": "Rex"}}),
        &HeaderMap::new(),
    )
    .unwrap();
    assert_eq!(req.method(), Method::POST);
    assert_eq!(req.headers()["content-type"], "application/json");
}
