from crawlfleet.dashboard.main import main

raise SystemExit(main())
