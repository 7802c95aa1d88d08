"""A bot that posts every 5 s and survives server restarts. RELAYCHAT_HOST/PORT pick the server."""

import asyncio

from relaychat.client import Client


async def main(count: int = 1_000_000, every: float = 5.0) -> None:
    async with Client(nick="tickbot") as client:  # reconnects, rejoins, resends what waited
        await client.join("#bots")
        for n in range(count):
            await client.send("#bots", f"tick {n}")  # arrives once, even across drops
            await asyncio.sleep(every)


if __name__ == "__main__":
    asyncio.run(main())
