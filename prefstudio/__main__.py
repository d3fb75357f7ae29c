from prefstudio.cli import main

raise SystemExit(main())
