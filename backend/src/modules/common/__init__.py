"""What every slice shares: domain exceptions, pagination and base schemas."""
