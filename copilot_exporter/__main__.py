from copilot_exporter.cli import main

raise SystemExit(main())
