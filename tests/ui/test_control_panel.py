"""The simulator control panel (/sim) in headless Chromium against a fake panel:
every listed command becomes a form, each control posts the right command with
typed args, and the device state on the page follows the panel."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

pytestmark = pytest.mark.browser


async def _open_panel(page, serve_ui, kiosk, panel):
    url = await serve_ui(kiosk, panel)
    await page.goto(url + "sim")
    await expect(page.locator("form.command")).to_have_count(len(panel.commands()))
    return page


def _form(page, command):
    return page.locator(f'form[data-command="{command}"]')


async def test_every_panel_command_is_listed_with_its_help(browser_page, serve_ui, fake_kiosk, fake_panel):
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, fake_panel)
    for entry in fake_panel.commands():
        await expect(_form(page, entry["command"])).to_contain_text(entry["help"])


async def test_a_denomination_button_inserts_that_note(browser_page, serve_ui, fake_kiosk, fake_panel):
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, fake_panel)
    await _form(page, "insert_note").get_by_role("button", name="20 EUR").click()
    assert await fake_panel.next_run() == ("insert_note", {"minor": 2000})
    await expect(page.locator("#result")).to_have_attribute("data-ok", "true")


async def test_a_typed_amount_is_posted_as_an_integer(browser_page, serve_ui, fake_kiosk, fake_panel):
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, fake_panel)
    form = _form(page, "insert_note")
    await form.locator('input[name="minor"]').fill("1000")
    await form.locator('[data-run="insert_note"]').click()
    command, args = await fake_panel.next_run()
    assert (command, args) == ("insert_note", {"minor": 1000})
    assert type(args["minor"]) is int


async def test_without_denominations_in_the_state_common_notes_are_offered(browser_page, serve_ui, fake_kiosk,
                                                                          fake_panel):
    panel = fake_panel
    panel.denominations = None
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, panel)
    buttons = _form(page, "insert_note").locator("[data-value]")
    await expect(buttons).to_have_count(7)
    await buttons.filter(has_text="50.00").click()
    assert await panel.next_run() == ("insert_note", {"minor": 5000})


async def test_a_command_without_args_posts_empty_args(browser_page, serve_ui, fake_kiosk, fake_panel):
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, fake_panel)
    await _form(page, "clear_jam").locator('[data-run="clear_jam"]').click()
    assert await fake_panel.next_run() == ("clear_jam", {})


async def test_a_sample_button_presents_that_qr_payload(browser_page, serve_ui, fake_kiosk, fake_panel):
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, fake_panel)
    form = _form(page, "present_qr")
    await expect(form.get_by_role("button", name="regtest")).to_have_count(1)  # once, not per text field
    await form.get_by_role("button", name="regtest").click()
    assert await fake_panel.next_run() == ("present_qr", {"text": fake_panel.state()["samples"]["regtest"]})


async def test_a_typed_qr_payload_is_presented_as_typed(browser_page, serve_ui, fake_kiosk, fake_panel):
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, fake_panel)
    form = _form(page, "present_qr")
    await form.locator('input[name="text"]').fill("bitcoin:bcrt1qxyz?amount=0.1&req-foo=1")
    await form.locator('input[name="distortion"]').fill("blur")
    await form.locator('[data-run="present_qr"]').click()
    assert await fake_panel.next_run() == (
        "present_qr", {"text": "bitcoin:bcrt1qxyz?amount=0.1&req-foo=1", "distortion": "blur"})


async def test_an_empty_field_is_left_out_so_the_commands_default_applies(browser_page, serve_ui, fake_kiosk,
                                                                          fake_panel):
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, fake_panel)
    form = _form(page, "present_qr")
    await form.locator('input[name="text"]').fill("bcrt1q94c3vs4hy6cygqtz0j5lhtpj7hy9xra3cpcc0y")
    await form.locator('[data-run="present_qr"]').click()
    assert await fake_panel.next_run() == ("present_qr", {"text": "bcrt1q94c3vs4hy6cygqtz0j5lhtpj7hy9xra3cpcc0y"})


@pytest.mark.parametrize("command, arg, choice", [("paper", "level", "near_end"), ("jam", "where", "stacker")])
async def test_choice_buttons_post_the_chosen_value(browser_page, serve_ui, fake_kiosk, fake_panel,
                                                    command, arg, choice):
    # Choices come as a list (paper) or as "a|b" text (jam): both become buttons.
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, fake_panel)
    await _form(page, command).get_by_role("button", name=choice, exact=True).click()
    assert await fake_panel.next_run() == (command, {arg: choice})


async def test_opening_the_door_shows_up_in_the_device_state(browser_page, serve_ui, fake_kiosk, fake_panel):
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, fake_panel)
    await expect(page.locator("#state")).to_contain_text('"door": "closed"')
    form = _form(page, "door")
    await form.get_by_role("button", name="open: yes").click()
    assert await fake_panel.next_run() == ("door", {"open": True})
    await expect(page.locator("#state")).to_contain_text('"door": "open"')
    await form.get_by_role("button", name="open: no").click()
    assert await fake_panel.next_run() == ("door", {"open": False})
    await expect(page.locator("#state")).to_contain_text('"door": "closed"')


async def test_the_state_refreshes_without_a_click(browser_page, serve_ui, fake_kiosk, fake_panel):
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, fake_panel)
    await expect(page.locator("#state")).to_contain_text('"door": "closed"')
    fake_panel.door_open = True  # changed behind the page's back, as a device would
    await expect(page.locator("#state")).to_contain_text('"door": "open"')


async def test_a_failing_command_shows_its_error(browser_page, serve_ui, fake_kiosk, fake_panel):
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, fake_panel)
    fake_panel.fail_with = RuntimeError("validator simulator is not running")
    await _form(page, "clear_jam").locator('[data-run="clear_jam"]').click()
    await expect(page.locator("#result")).to_have_attribute("data-ok", "false")
    await expect(page.locator("#result")).to_contain_text("validator simulator is not running")


async def test_a_command_with_several_args_posts_the_chosen_value_and_the_checkbox(browser_page, serve_ui, fake_kiosk,
                                                                                   fake_panel):
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, fake_panel)
    form = _form(page, "power_cycle")
    await form.locator('select[name="note_in"]').select_option("acceptor")
    await form.locator('input[name="slow_boot"]').check()
    await form.locator('[data-run="power_cycle"]').click()
    assert await fake_panel.next_run() == ("power_cycle", {"note_in": "acceptor", "slow_boot": True})
    await form.locator('input[name="slow_boot"]').uncheck()
    await form.locator('[data-run="power_cycle"]').click()
    assert await fake_panel.next_run() == ("power_cycle", {"note_in": "acceptor", "slow_boot": False})


class _RecordingSimulator:
    """A wire simulator's control surface that records the faults the panel sets."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def stall_stacking(self, then: str) -> None:
        self.calls.append(("stall_stacking", then))

    def lose_host_ack_once(self) -> None:
        self.calls.append(("lose_host_ack_once",))

    def take_away(self) -> None:
        self.calls.append(("take_away",))

    def state_info(self) -> dict:
        return {"faults_set": len(self.calls)}


@pytest.fixture
def world_with_recorders():
    from simulators.world import SimulatedWorld
    world = SimulatedWorld()
    world.sims["validator"], world.sims["scanner"] = _RecordingSimulator(), _RecordingSimulator()
    return world


async def _until_called(simulator, expected):
    import asyncio
    for _ in range(500):  # bounded: up to 5 s
        if simulator.calls == expected:
            return
        await asyncio.sleep(0.01)
    assert simulator.calls == expected


@pytest.mark.parametrize("then", ["stacker", "acceptor"])
async def test_the_panel_stalls_the_next_note_and_says_where_it_ends(browser_page, serve_ui, fake_kiosk,
                                                                     world_with_recorders, then):
    """The real world's command list, on the real page: one button per ending."""
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, world_with_recorders)
    form = _form(page, "stall_stacking")
    await expect(form).to_contain_text("stalls mid-stack")
    await form.get_by_role("button", name=then, exact=True).click()
    await _until_called(world_with_recorders.sims["validator"], [("stall_stacking", then)])
    await expect(page.locator("#result")).to_have_attribute("data-ok", "true")


async def test_the_panel_loses_the_host_ack_once_and_takes_the_code_away(browser_page, serve_ui, fake_kiosk,
                                                                         world_with_recorders):
    page = await _open_panel(browser_page, serve_ui, fake_kiosk, world_with_recorders)
    await _form(page, "lose_host_ack_once").locator('[data-run="lose_host_ack_once"]').click()
    await _until_called(world_with_recorders.sims["validator"], [("lose_host_ack_once",)])
    await _form(page, "take_away_qr").locator('[data-run="take_away_qr"]').click()
    await _until_called(world_with_recorders.sims["scanner"], [("take_away",)])
    await expect(page.locator("#result")).to_have_attribute("data-ok", "true")
