"""A small REST API (FastAPI, with its generated OpenAPI 3.1 spec at /openapi.json) for the
`openapi` target tests: path, query, header and body parameters, a 404 and a 500.

    python rest_api.py PORT
"""

import sys

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Query
from pydantic import BaseModel

app = FastAPI(title="Inventory", version="1.0.0")
ITEMS = {1: {"id": 1, "name": "hammer", "tags": ["tools"]}}


class NewItem(BaseModel):
    name: str
    tags: list[str] = []


@app.get("/items/{item_id}", operation_id="get_item", summary="Get one item")
def get_item(item_id: int, verbose: bool = False, x_request_tag: str | None = Header(default=None)):
    if item_id not in ITEMS:
        raise HTTPException(status_code=404, detail=f"no item {item_id}")
    item = dict(ITEMS[item_id])
    if verbose:
        item["verbose"] = True
    if x_request_tag:
        item["tag_header"] = x_request_tag
    return item


@app.get("/items", operation_id="list_items", summary="List items")
def list_items(tag: list[str] = Query(default=[]), limit: int = 10):
    found = [i for i in ITEMS.values() if not tag or set(tag) & set(i["tags"])]
    return {"items": found[:limit], "tags": tag, "limit": limit}


@app.post("/items", operation_id="create_item", status_code=201, summary="Create an item")
def create_item(item: NewItem):
    new_id = max(ITEMS) + 1
    ITEMS[new_id] = {"id": new_id, "name": item.name, "tags": item.tags}
    return ITEMS[new_id]


@app.delete("/items/{item_id}", operation_id="delete_item", summary="Delete an item")
def delete_item(item_id: int):
    if ITEMS.pop(item_id, None) is None:
        raise HTTPException(status_code=404, detail=f"no item {item_id}")
    return {"deleted": item_id}


@app.get("/boom", operation_id="boom", summary="Always fails")
def boom():
    raise HTTPException(status_code=500, detail="kaboom")


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
