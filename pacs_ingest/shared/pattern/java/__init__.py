"""Java's MessageFormat, ChoiceFormat, DecimalFormat and SimpleDateFormat, as far as dcm4che's
`--filepath` language exposes them, so patterns render as they do under dcm4che."""
