from lifelong.cli import main

raise SystemExit(main())
