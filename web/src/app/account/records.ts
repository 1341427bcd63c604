import { TollgateUser } from 'tollgate-angular';

/** The demo's users carry a profile besides what every Tollgate user has. */
export interface Person extends TollgateUser {
  first_name: string;
  last_name: string;
  gender: string;
  phone: string;
  city: string;
}

/** One entry of `GET /api/job-list`. */
export interface Job {
  id: string;
  user_id: string;
  company_name: string;
  title: string;
  first_date: string;
  last_date: string;
  skills: string;
  department: string;
  ein: string;
}
