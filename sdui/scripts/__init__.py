"""Scripts that run one request as many generations: A1111's X/Y/Z plot (`xyz`), its value syntax (`ranges`) and
its labelled grid (`grid`)."""
