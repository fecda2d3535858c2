#!/usr/bin/env python3
"""Render `notify --dry-run` payloads as an HTML mock of Discord's dark theme, for the README picture.

Not a Discord client: it draws what an embed shows (author, linked title, description, fields three
inline per row, footer and time, the role ping above the embed) with Discord's colours and spacing
closely enough to show the reader what to expect. Markdown support is the subset the helper emits:
backslash escapes, `code`, **bold**
and [text](url).

    python3 docs/embed-mock.py success.json failure.json > embed.html
    chromium --headless --hide-scrollbars --window-size=760,1000 --screenshot=docs/notify-embed.png embed.html
"""

from __future__ import annotations

import datetime
import html
import json
import re
import sys

CSS = """
body { margin: 0; background: #313338; font-family: 'Noto Sans', 'DejaVu Sans', sans-serif; color: #dbdee1; }
.message { display: flex; padding: 14px 16px 10px 16px; }
.avatar { width: 40px; height: 40px; border-radius: 50%; background: #5865f2; color: white; flex: none;
          display: flex; align-items: center; justify-content: center; font-weight: 700; margin-right: 16px; }
.name { color: #f2f3f5; font-weight: 600; font-size: 15px; }
.tag { background: #5865f2; color: white; font-size: 10px; font-weight: 700; border-radius: 3px;
       padding: 1px 4px; margin-left: 4px; vertical-align: 2px; }
.time { color: #949ba4; font-size: 12px; margin-left: 6px; }
.content { font-size: 15px; margin: 2px 0 6px 0; }
.mention { background: rgba(88, 101, 242, .3); color: #c9cdfb; border-radius: 3px; padding: 0 2px; font-weight: 500; }
.embed { background: #2b2d31; border-left: 4px solid; border-radius: 4px; max-width: 520px;
         padding: 8px 16px 16px 12px; margin-top: 4px; }
.author { color: #f2f3f5; font-size: 14px; font-weight: 600; margin-top: 8px; }
.title { font-size: 16px; font-weight: 600; margin-top: 8px; }
.title a, .value a { color: #00a8fc; text-decoration: none; }
.description { font-size: 14px; margin-top: 8px; white-space: pre-wrap; }
.fields { display: grid; grid-template-columns: repeat(12, 1fr); gap: 8px; margin-top: 8px; }
.field { grid-column: span 12; font-size: 14px; }
.field.inline { grid-column: span 4; }
.field .fname { color: #f2f3f5; font-weight: 600; margin-bottom: 2px; }
.field .value { white-space: pre-wrap; line-height: 1.35; word-break: break-word; }
code { background: #1e1f22; border-radius: 4px; padding: 0 .2em; font-family: 'DejaVu Sans Mono', monospace;
       font-size: 85%; }
.footer { color: #b5bac1; font-size: 12px; margin-top: 8px; }
"""


def markdown(text: str) -> str:
    """The markdown subset the helper emits: backslash escapes, `code`, **bold**, [text](url)."""
    held: list = []

    def hold(markup: str) -> str:
        held.append(markup)
        return f"\x00{len(held) - 1}\x00"

    text = re.sub(r"\\([^0-9A-Za-z\s])", lambda m: hold(html.escape(m.group(1))), text)
    text = re.sub(r"`([^`]*)`", lambda m: hold(f"<code>{html.escape(m.group(1))}</code>"), text)
    out = html.escape(text)
    out = re.sub(r"\[([^\]]*)\]\((https?://[^)\s]+)\)", r'<a href="\2">\1</a>', out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)
    return re.sub(r"\x00([0-9]+)\x00", lambda m: held[int(m.group(1))], out)


def render(body: dict) -> str:
    embed = body["embeds"][0]
    when = datetime.datetime.fromisoformat(embed["timestamp"]).strftime("%H:%M")
    parts = ['<div class="message"><div class="avatar">E</div><div>',
             f'<span class="name">Enadu CI</span><span class="tag">APP</span><span class="time">Today at {when}</span>']
    if body.get("content"):
        content = re.sub(r"&lt;@&amp;[0-9]+&gt;", '<span class="mention">@release-oncall</span>',
                         html.escape(body["content"]))
        parts.append(f'<div class="content">{content}</div>')
    parts.append(f'<div class="embed" style="border-color: #{embed["color"]:06x}">')
    if "author" in embed:
        parts.append(f'<div class="author">{html.escape(embed["author"]["name"])}</div>')
    title = html.escape(embed["title"])
    parts.append(f'<div class="title"><a href="{html.escape(embed.get("url", "#"))}">{title}</a></div>')
    parts.append(f'<div class="description">{markdown(embed["description"])}</div><div class="fields">')
    for field in embed["fields"]:
        cls = "field inline" if field.get("inline") else "field"
        parts.append(f'<div class="{cls}"><div class="fname">{markdown(field["name"])}</div>'
                     f'<div class="value">{markdown(field["value"])}</div></div>')
    parts.append(f'</div><div class="footer">{html.escape(embed["footer"]["text"])} \u2022 Today at {when}</div>')
    parts.append("</div></div></div>")
    return "".join(parts)


def main(paths: list) -> None:
    bodies = [json.load(open(path, encoding="utf-8")) for path in paths]
    print(f"<!doctype html><meta charset='utf-8'><style>{CSS}</style>" + "".join(render(b) for b in bodies))


if __name__ == "__main__":
    main(sys.argv[1:])
