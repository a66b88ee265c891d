"""Train and evaluate a model: ``python run_recbole_dnr.py --model=PRM --dataset=ml-100k``.

The same as the installed ``recbole-dnr`` command (``recbole_dnr/cli.py``); ``--help`` lists
the models and options. Any ``--key=value`` is passed into the config (RecBole's convention).
"""

from recbole_dnr.cli import main

if __name__ == "__main__":
    main()
