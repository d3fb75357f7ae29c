"""Shared by the Pilot tests of the app's screens."""


async def settle(pilot) -> None:
    """Wait until no worker runs and every message they posted is handled."""
    for _ in range(20):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if all(worker.is_finished for worker in pilot.app.workers):
            return
    raise AssertionError("workers did not settle")


async def open_screen(pilot, key: str):
    """The screen an F-key shows, once the app and then that screen have settled."""
    await settle(pilot)
    await pilot.press(key)
    await settle(pilot)
    return pilot.app.screen
