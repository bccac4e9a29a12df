from infra.jobs.cli import main

raise SystemExit(main())
