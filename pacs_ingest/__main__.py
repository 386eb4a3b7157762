from pacs_ingest.cli import main

raise SystemExit(main())
