"""A bot that posts every 5 s and survives server restarts. RELAYCHAT_HOST/PORT pick the server."""

import asyncio

from relaychat.client import Client


async def main() -> None:
    async with Client(nick="tickbot") as client:  # reconnects, rejoins, resends what waited
        await client.join("#bots")
        for n in range(1_000_000):
            await client.send("#bots", f"tick {n}")
            await asyncio.sleep(5)


asyncio.run(main())
