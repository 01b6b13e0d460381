"""A pycapnp (2.x, asyncio) peer for dotdo's TCP listener, run by tests/tests/interop.rs.

Usage: python3 interop_pycapnp.py <host> <port> <schema dir>

Bootstraps Gateway, reads demo().directory.open("a").file.child("b").file.read() as one
pipelined chain, passes a Python Callback to directory.subscribe(), and prints one line
per result:

    chain: <text>
    subscribe: <reply>
"""

import asyncio
import os
import sys

import capnp

HOST, PORT, SCHEMA_DIR = sys.argv[1], int(sys.argv[2]), sys.argv[3]
session = capnp.load(os.path.join(SCHEMA_DIR, "session.capnp"), imports=[SCHEMA_DIR])
demo = capnp.load(os.path.join(SCHEMA_DIR, "demo.capnp"), imports=[SCHEMA_DIR])


class Shout(demo.Callback.Server):
    """Called back by the server during subscribe(): replies with the value upper-cased."""

    async def notify(self, value, **kwargs):
        return "py:" + value.upper()


async def main():
    stream = await capnp.AsyncIoStream.create_connection(host=HOST, port=PORT)
    client = capnp.TwoPartyClient(stream)
    gateway = client.bootstrap().cast_as(session.Gateway)

    # Pipelined: no call below waits for the one before it.
    directory = gateway.demo().directory
    read = directory.open("a").file.child("b").file.read()
    result = await asyncio.wait_for(read, timeout=10)
    print("chain:", result.text, flush=True)

    reply = await asyncio.wait_for(directory.subscribe(Shout(), "hello"), timeout=10)
    print("subscribe:", reply.reply, flush=True)


if __name__ == "__main__":
    # pycapnp 2.x: capnp.run() is a coroutine that runs main() inside the KJ event loop.
    asyncio.run(capnp.run(main()))
