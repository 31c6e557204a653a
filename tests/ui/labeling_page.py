"""The labeling page as the browser tests drive it (a page object)."""

from playwright.sync_api import Page

SUBMIT = "**/api/labeling/queues/*/submit/"
NEXT = "**/api/labeling/queues/*/next/"


class LabelingPage:
    def __init__(self, page: Page, live_server, queue) -> None:
        self.page = page
        self.url = f"{live_server.url}/label/{queue.pk}/"

    def open(self) -> "LabelingPage":
        self.page.goto(self.url)
        return self

    def wait_for_pair(self, *, other_than: int | None = None) -> int:
        """Wait until a pair is on screen and takes input; return its id."""
        self.page.wait_for_function(
            """prev => {
                const app = document.getElementById('label-app');
                return app.dataset.state === 'labeling' && app.dataset.ready === 'true'
                    && app.dataset.pair && app.dataset.pair !== prev;
            }""",
            arg=str(other_than) if other_than is not None else "",
        )
        return self.pair_on_screen()

    def pair_on_screen(self) -> int:
        return int(self.page.get_attribute("#label-app", "data-pair"))

    def images_loaded(self) -> None:
        self.page.wait_for_function(
            """() => ['img-left', 'img-right'].every(id => {
                const img = document.getElementById(id);
                return img.complete && img.naturalWidth > 0;
            })"""
        )

    def press_and_advance(self, key: str) -> tuple[int, int | None]:
        """Answer the pair on screen with a key; return (that pair, the next one or None)."""
        pair = self.wait_for_pair()
        self.page.keyboard.press(key)
        self.page.wait_for_function(
            "prev => document.getElementById('label-app').dataset.pair !== prev",
            arg=str(pair),
        )
        nxt = self.page.get_attribute("#label-app", "data-pair")
        return pair, int(nxt) if nxt else None

    def waiting(self) -> int:
        return int(self.page.get_attribute("#outbox-status", "data-waiting"))

    def wait_until_waiting(self, n: int, timeout_ms: int = 30_000) -> None:
        self.page.wait_for_function(
            "n => document.getElementById('outbox-status').dataset.waiting === String(n)",
            arg=n,
            timeout=timeout_ms,
        )

    def cut_submits(self) -> None:
        self.page.route(SUBMIT, lambda route: route.abort("internetdisconnected"))

    def restore_submits(self) -> None:
        self.page.unroute(SUBMIT)
        # Browsers announce a network that comes back; the outbox sends at once.
        self.page.evaluate("window.dispatchEvent(new Event('online'))")
