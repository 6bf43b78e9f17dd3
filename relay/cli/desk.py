"""``avisa desk …``: who the desk's actors are (DESIGN §17, persons not tokens).

The two-person rule counts persons. A token belongs to one (``avisa token add
--person``, by default its label); a Matrix id the desk room hears is linked
to one here, so Rosa confirming with a token and again from Matrix counts
once. Links live in the node's database and count at once, for outcomes
already recorded too (a tip's history is read with each actor's person as
the desk knows it now). The node need not be stopped. What they print is in
the volunteer's language (``relay.cli.words``, ids ``cli.desk.*``).
"""

from __future__ import annotations

import argparse
from typing import Any

from relay.cli.words import lang_arg, words_of
from relay.core import config as config_mod
from relay.core.language import N_
from relay.storage import db, trust


def cmd_link(args: argparse.Namespace) -> int:
    conn = db.open_sync(args.data / config_mod.DB_NAME)
    try:
        db.transaction(conn, lambda c: trust.link_person(c, args.user_id, args.person))
    finally:
        conn.close()
    person = trust.check_person(args.person)
    print(words_of(args).gettext("cli.desk.linked", user=args.user_id, person=person))
    return 0


def cmd_unlink(args: argparse.Namespace) -> int:
    conn = db.open_sync(args.data / config_mod.DB_NAME)
    try:
        removed = db.transaction(conn, lambda c: trust.unlink_person(c, args.user_id))
    finally:
        conn.close()
    message = N_("cli.desk.unlinked") if removed else N_("cli.desk.not_linked")
    print(words_of(args).gettext(message, user=args.user_id))
    return 0


def cmd_persons(args: argparse.Namespace) -> int:
    conn = db.open_sync(args.data / config_mod.DB_NAME)
    try:
        tokens = trust.list_tokens(conn)
        links = trust.linked_persons(conn)
    finally:
        conn.close()
    rows = [(info.person or "-", f"token:{info.token_id}") for info in tokens]
    rows += [(person, user_id) for user_id, person in links]
    for person, actor in sorted(rows):
        print(f"{person:24}  {actor}")
    return 0


def register(commands: Any) -> None:
    from relay.cli.main import data_arg

    desk = commands.add_parser("desk", help="the desk's persons: Matrix ids linked to people")
    actions = desk.add_subparsers(dest="desk_command", required=True, metavar="ACTION")
    link = actions.add_parser("link", help="link a Matrix id to a person (two-person rule)")
    link.add_argument("user_id", metavar="@USER:SERVER", help="as the desk room sees it")
    link.add_argument("person", metavar="NAME", help="as on their token (--person)")
    data_arg(link)
    lang_arg(link)
    link.set_defaults(func=cmd_link)
    unlink = actions.add_parser("unlink", help="forget a Matrix id's person")
    unlink.add_argument("user_id", metavar="@USER:SERVER", help="as linked before")
    data_arg(unlink)
    lang_arg(unlink)
    unlink.set_defaults(func=cmd_unlink)
    persons = actions.add_parser("persons", help="each token and linked Matrix id, by person")
    data_arg(persons)
    lang_arg(persons)
    persons.set_defaults(func=cmd_persons)
