"""The request router: DynamoDB's HTTP front door for one region of a dynalab cluster.

Stateless: it hashes each request's partition key onto the region's ring (computed locally from
the topology), sends it over one multiplexed gRPC stream per storage node to the partition leader
(or a same-AZ replica for an eventually consistent read), and fans Query, Scan and the batch
operations out to partitions. The table catalog is cached from the metadata group.

Modules: `server` (the HTTP/1.1 server, the one error-to-wire mapping), `app` (Router, operation
table), `control` / `items` / `scans` / `batch` (the operations), `catalog` (catalog cache),
`routing` (placement, leader cache, retries), `nodes` (the gRPC node client), `params`
(DynamoDB's parameter checks). Run it with `python -m router --data-dir DIR --id ROUTER_ID`.
"""
from router.app import Router, RouterConfig
from router.nodes import GrpcTransport, Reply, StorageRequest, StorageTransport
from router.routing import RetryConfig
from router.server import HttpServer

__all__ = ["Router", "RouterConfig", "RetryConfig", "GrpcTransport", "StorageTransport",
           "StorageRequest", "Reply", "HttpServer"]
