"""Problems found in a dataset and their summary."""
from collections import defaultdict
from typing import List, NamedTuple, Optional


class Problem(NamedTuple):
    """One problem of one sample.

    Args:
        kind (str): Short name of the check (e.g. ``'out-of-image box'``).
        where (str): The sample: dataset, index or id, file.
        detail (str): What is wrong.
    """
    kind: str
    where: str
    detail: str


def format_report(name: str, num_samples: int, problems: List[Problem],
                  first: Optional[int] = 5) -> str:
    """A summary of ``problems``: a count per kind and the first offenders of each."""
    if not problems:
        return f'{name}: {num_samples} samples, no problems'
    by_kind = defaultdict(list)
    for problem in problems:
        by_kind[problem.kind].append(problem)
    lines = [f'{name}: {num_samples} samples, {len(problems)} problems']
    for kind, found in by_kind.items():
        lines.append(f'  {kind}: {len(found)}')
        lines += [f'    {p.where}: {p.detail}' for p in found[:first]]
        if first is not None and len(found) > first:
            lines.append(f'    ... and {len(found) - first} more')
    return '\n'.join(lines)
