"""`python -m relaychat` is the same as the `relaychat` command."""

from relaychat.cli import main

raise SystemExit(main())
