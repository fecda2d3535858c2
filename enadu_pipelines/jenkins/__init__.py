"""Jenkins bootstrap: render each service's job ``config.xml`` and make a controller hold exactly those.

``jobs`` renders, ``xmlnorm`` compares what Jenkins stores with what we render, ``client`` talks to
the controller through python-jenkins, and ``bootstrap`` plans and applies the difference.
"""
