"""`python -m sleeptrain ...`, which is also what `accelerate launch -m sleeptrain ...` runs."""

from sleeptrain.cli import main

if __name__ == "__main__":
    main()
