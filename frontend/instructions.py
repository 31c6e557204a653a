"""A queue's instructions (markdown) rendered to HTML that is safe to put on the labeling page.

Leads write the markdown in the admin; annotators read it beside every pair. Raw HTML is not
rendered (it shows as text), links keep only http(s), mailto and same-site targets, and images
come only from the queue's own example images (`![caption](example:NAME)`) or same-site paths:
nothing on the page can run script or call a third-party host.
"""

from collections.abc import Mapping
from html import escape

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

_LINK_SCHEMES = ("http://", "https://", "mailto:")


def _same_site(url: str) -> bool:
    return (url.startswith("/") and not url.startswith("//")) or url.startswith("#")


def _render_link_open(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    href = token.attrGet("href") or ""
    if not (href.lower().startswith(_LINK_SCHEMES) or _same_site(href)):
        token.attrs.pop("href", None)
    elif not _same_site(href):
        token.attrSet("target", "_blank")
        token.attrSet("rel", "noopener noreferrer")
    return self.renderToken(tokens, idx, options, env)


def _render_image(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    src = token.attrGet("src") or ""
    alt = self.renderInlineAsText(token.children or [], options, env)
    examples: Mapping[str, str] = env.get("examples", {})
    if src.startswith("example:"):
        url = examples.get(src.removeprefix("example:"))
    else:
        url = src if _same_site(src) else None
    if url is None:
        # A missing or foreign image: its caption stays readable, nothing is fetched.
        return f'<span class="image-missing">[{escape(alt)}]</span>'
    title = token.attrGet("title")
    title_attr = f' title="{escape(title)}"' if title else ""
    return (
        f'<img class="example" src="{escape(url)}" alt="{escape(alt)}"{title_attr} loading="lazy">'
    )


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("link_open", _render_link_open)
    md.add_render_rule("image", _render_image)
    return md


_MARKDOWN = _parser()


def instructions_render(*, markdown: str, example_urls: Mapping[str, str]) -> SafeString:
    """The instructions as safe HTML; `example_urls` maps example image names to their URLs."""
    return mark_safe(_MARKDOWN.render(markdown or "", {"examples": dict(example_urls)}))  # noqa: S308
