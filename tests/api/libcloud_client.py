"""One Libcloud ElasticHosts call, run by whichever Python has the Libcloud under test.

`python libcloud_client.py '{"host": ..., "port": ..., "user": ..., "secret": ..., "op": ..., ...}'`
prints one JSON object: the call's result, or the exception Libcloud raised. The tests run it with
the project's virtual environment (Libcloud 3.7.0) and with Debian's /usr/bin/python3 and its
python3-libcloud (3.4.1), so this file imports nothing but the standard library and Libcloud.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import libcloud
from libcloud.compute.base import Node, NodeImage
from libcloud.compute.drivers.elastichosts import ElasticHostsNodeDriver
from libcloud.compute.types import NodeState


def as_dict(node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "name": node.name,
        "state": str(node.state),
        "public_ips": list(node.public_ips or []),
        "extra": {key: value for key, value in node.extra.items() if key != "password"},
    }


def bare_node(driver: ElasticHostsNodeDriver, node_id: str) -> Node:
    """A Node with only its ID, as a caller that kept nothing else has: all reboot and destroy read."""
    return Node(id=node_id, name="", state=NodeState.UNKNOWN, public_ips=[], private_ips=[], driver=driver)


def call(args: dict[str, Any]) -> Any:
    driver = ElasticHostsNodeDriver(
        args["user"], args["secret"], secure=False, host=args["host"], port=int(args["port"])
    )
    op = args["op"]
    if op == "hello":
        return {"version": libcloud.__version__, "module": libcloud.__file__}
    if op == "list_images":
        return [image.id for image in driver.list_images()]
    if op == "list_nodes":
        return [as_dict(node) for node in driver.list_nodes()]
    if op == "create_node":
        size = next(s for s in driver.list_sizes() if s.id == args["size"])
        # An image Libcloud does not list is made by hand, as a caller naming an image by ID would.
        image = next(
            (i for i in driver.list_images() if i.id == args["image"]),
            NodeImage(id=args["image"], name="by id", driver=driver),
        )
        return as_dict(
            driver.create_node(name=args["name"], size=size, image=image, vnc_password=args.get("vnc_password"))
        )
    if op == "reboot_node":
        return driver.reboot_node(bare_node(driver, args["id"]))
    if op == "destroy_node":
        return driver.destroy_node(bare_node(driver, args["id"]))
    raise ValueError(f"unknown op {op}")


def main() -> None:
    args = json.loads(sys.argv[1])
    try:
        answer = {"result": call(args)}
    except Exception as e:  # the test judges what Libcloud raised
        answer = {"error": type(e).__name__, "message": str(e)}
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
