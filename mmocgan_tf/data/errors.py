"""DataError: the one exception every data reader raises, so callers catch one type.

It lives below the readers and the loaders so that each of them can raise it without
importing the others.
"""

import re


class DataError(ValueError):
    """Bad input data.

    str(err) is ONE line naming the problem (file, column, row) for the CLI to print.
    """

    def __init__(self, message: str):
        super().__init__(re.sub(r"\s*[\r\n]+\s*", " ", str(message)).strip())
