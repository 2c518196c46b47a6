#!/usr/bin/env python
"""Average the final results of several runs, e.g. RegDB's ten trials.

    for t in 0 1 2 3 4 5 6 7 8 9; do
        python scripts/main.py --config-file CFG data.split_id $t data.save_dir log/regdb_t$t
    done
    python scripts/aggregate_results.py log/regdb_t*       # run folders or their results.json

RegDB is reported as the mean over ten models, each trained and tested on its own
trial (data.split_id 0..9); SYSU-MM01's ten gallery trials are already averaged
inside one run. The command is ``vireid_plugin.aggregate.main``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vireid_plugin.aggregate import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
